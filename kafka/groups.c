/*
** groups.c -- consumer group membership, as Kafka's GroupCoordinator does it
** for one broker: a JoinGroup starts a rebalance (PREPARING); every member
** must join again (other members learn it from Heartbeat's
** REBALANCE_IN_PROGRESS) until all have, or the rebalance timeout drops the
** ones that did not; then the generation advances, the first member is the
** leader and gets every member's metadata (AWAITING_SYNC); the leader's
** SyncGroup hands each member its assignment (STABLE). A member silent for
** its session timeout (a request waiting here counts as alive) is dropped
** at the next Heartbeat or JoinGroup of the group, or by a JoinGroup or
** SyncGroup waiting on it, and a rebalance starts.
**
** An OffsetCommit holds the coordinator's lock from its generation check to
** its write (kg_commit_begin/end): were the lock dropped in between, a
** rebalance could complete, the partition's new owner fetch the old offset,
** and the commit then land and be answered as done -- records the group
** committed would be read again.
**
** Requests block while they wait (one thread per connection): JoinGroup for
** the round to complete, a follower's SyncGroup for the leader's. One mutex
** and condition variable serve all groups: group traffic is small.
** Bounded: MAX_GROUPS groups of MAX_MEMBERS members; metadata and
** assignments are copies no larger than the request that carried them.
*/
#include "groups.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_GROUPS 1024
#define MAX_MEMBERS 256
#define MAX_PROTOCOLS 16
#define ID_MAX 256
/* Kafka's group.initial.rebalance.delay.ms is 3 s; a shorter wait for the
** first round keeps a lone consumer quick and still gathers ones started together. */
#define INITIAL_DELAY_MS 300

enum { EMPTY, PREPARING, AWAITING_SYNC, STABLE };

enum {
  KE_REBALANCE_IN_PROGRESS = 27,
  KE_INCONSISTENT_GROUP_PROTOCOL = 23,
  KE_INVALID_SESSION_TIMEOUT = 26,
  KE_GROUP_MAX_SIZE_REACHED = 81,
};

typedef struct member {
  char id[ID_MAX];
  int32_t session_ms, rebalance_ms;
  int64_t last_seen;
  int joined; /* joined in the current round */
  int nproto;
  char proto_name[MAX_PROTOCOLS][ID_MAX];
  uint8_t *proto_meta[MAX_PROTOCOLS];
  size_t proto_len[MAX_PROTOCOLS];
  uint8_t *assignment;
  size_t alen;
} member;

typedef struct group {
  char id[ID_MAX];
  int state;
  int32_t generation;
  char protocol_type[ID_MAX];
  char protocol[ID_MAX];
  char leader[ID_MAX];
  member *m[MAX_MEMBERS];
  int n;
  int64_t deadline; /* PREPARING: when the round completes regardless */
} group;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static group *groups[MAX_GROUPS];
static int ngroups;
static unsigned long member_seq;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void member_free(member *x) {
  for (int i = 0; i < x->nproto; i++) free(x->proto_meta[i]);
  free(x->assignment);
  free(x);
}

static group *find_group(kp_str id, int create) {
  char name[ID_MAX];
  if (kp_str_copy(id, name, sizeof name) || !name[0]) return NULL;
  for (int i = 0; i < ngroups; i++)
    if (!strcmp(groups[i]->id, name)) return groups[i];
  if (!create) return NULL;
  for (int i = 0; i < ngroups; i++) /* reuse an empty group's slot */
    if (groups[i]->n == 0) {
      memset(groups[i], 0, sizeof *groups[i]);
      snprintf(groups[i]->id, ID_MAX, "%s", name);
      return groups[i];
    }
  if (ngroups == MAX_GROUPS) return NULL;
  group *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  snprintf(g->id, ID_MAX, "%s", name);
  groups[ngroups++] = g;
  return g;
}

static int find_member(group *g, kp_str id) {
  for (int i = 0; i < g->n; i++)
    if (strlen(g->m[i]->id) == id.len && !memcmp(g->m[i]->id, id.ptr, id.len)) return i;
  return -1;
}

static void remove_member(group *g, int i) {
  kh_log("group %s: member %s leaves", g->id, g->m[i]->id);
  member_free(g->m[i]);
  g->m[i] = g->m[--g->n];
}

static void start_rebalance(group *g, int64_t now) {
  if (g->n == 0) {
    g->state = EMPTY;
    return;
  }
  if (g->state == PREPARING) return;
  int32_t wait = 0;
  for (int i = 0; i < g->n; i++) {
    g->m[i]->joined = 0;
    if (g->m[i]->rebalance_ms > wait) wait = g->m[i]->rebalance_ms;
  }
  g->state = PREPARING;
  g->deadline = now + wait;
  pthread_cond_broadcast(&cv);
}

/* Drop members whose session ran out; a rebalance follows. */
static void expire(group *g, int64_t now) {
  int dropped = 0;
  for (int i = 0; i < g->n;) {
    if (now - g->m[i]->last_seen > g->m[i]->session_ms) {
      kh_log("group %s: session of %s expired", g->id, g->m[i]->id);
      remove_member(g, i);
      dropped = 1;
    } else {
      i++;
    }
  }
  if (dropped) start_rebalance(g, now);
}

/* The round is over: drop who did not join, pick protocol and leader. */
static void complete_join(group *g) {
  for (int i = 0; i < g->n;)
    if (!g->m[i]->joined) remove_member(g, i);
    else i++;
  if (g->n == 0) {
    g->state = EMPTY;
    pthread_cond_broadcast(&cv);
    return;
  }
  int li = 0;
  for (int i = 0; i < g->n; i++)
    if (!strcmp(g->m[i]->id, g->leader)) li = i;
  snprintf(g->leader, ID_MAX, "%s", g->m[li]->id);
  g->protocol[0] = 0;
  for (int p = 0; p < g->m[li]->nproto && !g->protocol[0];
       p++) { /* the leader's first choice all support */
    int all = 1;
    for (int i = 0; i < g->n && all; i++) {
      int has = 0;
      for (int q = 0; q < g->m[i]->nproto; q++)
        has |= !strcmp(g->m[i]->proto_name[q], g->m[li]->proto_name[p]);
      all = has;
    }
    if (all) snprintf(g->protocol, ID_MAX, "%s", g->m[li]->proto_name[p]);
  }
  for (int i = 0; i < g->n; i++) {
    free(g->m[i]->assignment);
    g->m[i]->assignment = NULL;
    g->m[i]->alen = 0;
  }
  g->generation++;
  g->state = AWAITING_SYNC;
  kh_log("group %s: generation %d with %d members, leader %s, protocol %s", g->id,
         (int)g->generation, g->n, g->leader, g->protocol);
  pthread_cond_broadcast(&cv);
}

static void wait_until(int64_t deadline_ms) {
  int64_t step = deadline_ms - now_ms();
  if (step > 100) step = 100; /* wake to re-check deadlines and shutdown */
  if (step < 1) step = 1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += (long)step * 1000000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  pthread_cond_timedwait(&cv, &mu, &ts);
}

int kg_join_group(kh_ctx *c, kp_reader *r, int16_t v, kp_str client_id, kp_writer *w) {
  kp_str gid = kp_string(r);
  int32_t session = kp_i32(r);
  int32_t rebalance = v >= 1 ? kp_i32(r) : session;
  kp_str mid = kp_string(r);
  if (v >= 5)
    kp_string(r); /* group_instance_id: static membership not supported, treated as dynamic */
  kp_str ptype = kp_string(r);
  int32_t np = kp_array(r, 6);
  kp_reader protos = *r;
  for (int32_t i = 0; i < np; i++) kp_string(r), kp_bytes(r);
  if (r->err || np < 0) return -1;

  int16_t err = KE_NONE;
  char my_id[ID_MAX] = "";
  int32_t gen = -1;
  char proto[ID_MAX] = "", leader[ID_MAX] = "";
  int is_leader = 0;
  pthread_mutex_lock(&mu);
  int64_t now = now_ms();
  group *g = find_group(gid, 1);
  member *me = NULL;
  if (!g) err = KE_INVALID_REQUEST;
  else if (session < 1000 || session > 1800000 || rebalance < 0) err = KE_INVALID_SESSION_TIMEOUT;
  else if (np == 0 || np > MAX_PROTOCOLS || !ptype.ptr) err = KE_INCONSISTENT_GROUP_PROTOCOL;
  else if (g->n && (strlen(g->protocol_type) != ptype.len ||
                    memcmp(g->protocol_type, ptype.ptr, ptype.len)))
    err = KE_INCONSISTENT_GROUP_PROTOCOL;
  if (!err) {
    expire(g, now);
    int i = mid.len ? find_member(g, mid) : -1;
    if (mid.len && i < 0) {
      err = KE_UNKNOWN_MEMBER_ID;
    } else if (i < 0) {
      if (g->n == MAX_MEMBERS) err = KE_GROUP_MAX_SIZE_REACHED;
      else if (!(me = calloc(1, sizeof *me))) err = KE_UNKNOWN_SERVER_ERROR;
      else {
        snprintf(me->id, ID_MAX, "%.*s-%lu", (int)(client_id.len < 100 ? client_id.len : 100),
                 client_id.ptr ? client_id.ptr : "member", ++member_seq);
        if (g->n == 0) {
          kp_str_copy(ptype, g->protocol_type, sizeof g->protocol_type);
          g->state = EMPTY;
        }
        g->m[g->n++] = me;
        kh_log("group %s: member %s joins", g->id, me->id);
      }
    } else {
      me = g->m[i];
    }
  }
  if (!err) { /* this join's protocols replace the member's old ones */
    for (int i = 0; i < me->nproto; i++) free(me->proto_meta[i]);
    me->nproto = 0;
    for (int32_t i = 0; i < np; i++) {
      kp_str name = kp_string(&protos), meta = kp_bytes(&protos);
      if (kp_str_copy(name, me->proto_name[me->nproto], ID_MAX)) continue;
      me->proto_meta[me->nproto] = malloc(meta.len ? meta.len : 1);
      if (!me->proto_meta[me->nproto]) continue;
      if (meta.len) memcpy(me->proto_meta[me->nproto], meta.ptr, meta.len);
      me->proto_len[me->nproto++] = meta.len;
    }
    me->session_ms = session;
    me->rebalance_ms = rebalance;
    me->last_seen = now;
    snprintf(my_id, sizeof my_id, "%s", me->id);
    int was_empty = g->state == EMPTY;
    start_rebalance(g, now);
    if (was_empty && g->deadline > now + INITIAL_DELAY_MS) g->deadline = now + INITIAL_DELAY_MS;
    me->joined = 1;
    int32_t start_gen = g->generation;
    int64_t give_up = c->max_wait_cap_ms > 0 ? now_ms() + c->max_wait_cap_ms : INT64_MAX;
    for (;;) {
      int idx = find_member(g, (kp_str){my_id, strlen(my_id)});
      if (idx < 0) {
        err = KE_UNKNOWN_MEMBER_ID;
        break;
      }
      g->m[idx]->last_seen = now_ms(); /* waiting counts as alive */
      /* ...and those that neither wait nor heartbeat run out meanwhile: a
      ** member that died as the round began must not hold it to the
      ** rebalance timeout (minutes), no one else being there to notice */
      expire(g, now_ms());
      /* a round that started after ours completed counts this waiting join too:
      ** the member cannot send another JoinGroup while this one is pending */
      if (g->state == PREPARING) g->m[idx]->joined = 1;
      if (g->generation != start_gen && g->state != PREPARING) break;
      if (g->state == PREPARING) {
        int all = 1;
        for (int i = 0; i < g->n; i++) all &= g->m[i]->joined;
        int64_t t = now_ms();
        if ((all && !(g->generation == 0 && t < g->deadline)) || t >= g->deadline) {
          complete_join(g);
          continue;
        }
      }
      /* Shutting down, or the fuzzer (max_wait_cap_ms), which must not sit
      ** out a round: answer as a join whose round is not over. */
      if (atomic_load(c->stopping) || now_ms() >= give_up) {
        err = KE_REBALANCE_IN_PROGRESS;
        break;
      }
      wait_until(g->deadline < give_up ? g->deadline : give_up);
    }
    if (!err) {
      gen = g->generation;
      snprintf(proto, sizeof proto, "%s", g->protocol);
      snprintf(leader, sizeof leader, "%s", g->leader);
      is_leader = !strcmp(leader, my_id);
    }
  }
  if (v >= 2) kp_w_i32(w, 0);
  kp_w_i16(w, err);
  kp_w_i32(w, gen);
  kp_w_string(w, proto);
  kp_w_string(w, leader);
  kp_w_string(w, my_id);
  if (!err && is_leader) {
    kp_w_i32(w, g->n);
    for (int i = 0; i < g->n; i++) {
      member *x = g->m[i];
      kp_w_string(w, x->id);
      if (v >= 5) kp_w_string(w, NULL);
      int q = 0;
      while (q < x->nproto && strcmp(x->proto_name[q], proto)) q++;
      if (q < x->nproto) kp_w_bytes(w, x->proto_meta[q], x->proto_len[q]);
      else kp_w_bytes(w, "", 0);
    }
  } else {
    kp_w_i32(w, 0);
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

int kg_sync_group(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  kp_str gid = kp_string(r);
  int32_t gen = kp_i32(r);
  kp_str mid = kp_string(r);
  if (v >= 3) kp_string(r);
  int32_t na = kp_array(r, 6);
  kp_reader as = *r;
  for (int32_t i = 0; i < na; i++) kp_string(r), kp_bytes(r);
  if (r->err) return -1;
  int16_t err = KE_NONE;
  uint8_t *mine = NULL;
  size_t mlen = 0;
  pthread_mutex_lock(&mu);
  group *g = find_group(gid, 0);
  int i = g ? find_member(g, mid) : -1;
  if (i < 0) err = KE_UNKNOWN_MEMBER_ID;
  else if (gen != g->generation) err = KE_ILLEGAL_GENERATION;
  else if (g->state == PREPARING) err = KE_REBALANCE_IN_PROGRESS;
  if (!err) {
    g->m[i]->last_seen = now_ms();
    if (!strcmp(g->leader, g->m[i]->id) && g->state == AWAITING_SYNC) {
      for (int32_t k = 0; k < na; k++) {
        kp_str to = kp_string(&as), a = kp_bytes(&as);
        int j = find_member(g, to);
        if (j < 0 || !a.ptr) continue;
        free(g->m[j]->assignment);
        g->m[j]->assignment = malloc(a.len ? a.len : 1);
        if (g->m[j]->assignment) memcpy(g->m[j]->assignment, a.ptr, a.len);
        g->m[j]->alen = g->m[j]->assignment ? a.len : 0;
      }
      g->state = STABLE;
      pthread_cond_broadcast(&cv);
    }
    int64_t deadline =
        now_ms() + (c->max_wait_cap_ms > 0 ? c->max_wait_cap_ms : g->m[i]->rebalance_ms);
    /* a follower waiting for the leader is alive; a leader that died before
    ** its SyncGroup is expired after its session, which starts a new round */
    while (g->state == AWAITING_SYNC && g->generation == gen && now_ms() < deadline &&
           !atomic_load(c->stopping)) {
      int me = find_member(g, mid);
      if (me < 0) break;
      g->m[me]->last_seen = now_ms();
      expire(g, now_ms());
      if (g->state == AWAITING_SYNC && g->generation == gen) wait_until(deadline);
    }
    i = find_member(g, mid);
    if (i < 0) err = KE_UNKNOWN_MEMBER_ID;
    else if (g->generation != gen || g->state != STABLE) err = KE_REBALANCE_IN_PROGRESS;
    else if (g->m[i]->alen && (mine = malloc(g->m[i]->alen))) {
      memcpy(mine, g->m[i]->assignment, g->m[i]->alen);
      mlen = g->m[i]->alen;
    }
  }
  pthread_mutex_unlock(&mu);
  if (v >= 1) kp_w_i32(w, 0);
  kp_w_i16(w, err);
  kp_w_bytes(w, mine ? (const void *)mine : "", mlen);
  free(mine);
  return 0;
}

int kg_heartbeat(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  (void)c;
  kp_str gid = kp_string(r);
  int32_t gen = kp_i32(r);
  kp_str mid = kp_string(r);
  if (v >= 3) kp_string(r);
  if (r->err) return -1;
  int16_t err = KE_NONE;
  pthread_mutex_lock(&mu);
  group *g = find_group(gid, 0);
  if (g) expire(g, now_ms());
  int i = g ? find_member(g, mid) : -1;
  if (i < 0) err = KE_UNKNOWN_MEMBER_ID;
  else {
    g->m[i]->last_seen = now_ms();
    if (g->state == PREPARING) err = KE_REBALANCE_IN_PROGRESS;
    else if (gen != g->generation) err = KE_ILLEGAL_GENERATION;
  }
  pthread_mutex_unlock(&mu);
  if (v >= 1) kp_w_i32(w, 0);
  kp_w_i16(w, err);
  return 0;
}

int kg_leave_group(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  (void)c;
  kp_str gid = kp_string(r);
  kp_str mid = kp_string(r);
  if (r->err) return -1;
  int16_t err = KE_NONE;
  pthread_mutex_lock(&mu);
  group *g = find_group(gid, 0);
  int i = g ? find_member(g, mid) : -1;
  if (i < 0) err = KE_UNKNOWN_MEMBER_ID;
  else {
    remove_member(g, i);
    g->state = g->n ? STABLE : EMPTY; /* so that start_rebalance starts a fresh round */
    start_rebalance(g, now_ms());
  }
  pthread_mutex_unlock(&mu);
  if (v >= 1) kp_w_i32(w, 0);
  kp_w_i16(w, err);
  return 0;
}

/* Test hook (environment TAKHIN_KAFKA_TEST_COMMIT_DELAY_MS): sleep between
** an OffsetCommit's check and its write, so a test can line a rebalance up
** against that window (it must wait for the commit). */
static void test_commit_delay(void) {
  static int delay_ms = -1;
  if (delay_ms < 0) {
    const char *e = getenv("TAKHIN_KAFKA_TEST_COMMIT_DELAY_MS");
    delay_ms = e && atoi(e) > 0 ? atoi(e) : 0;
  }
  if (delay_ms) {
    struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
}

int16_t kg_commit_begin(kp_str gid, int32_t gen, kp_str mid) {
  int16_t err = KE_NONE;
  /* a simple consumer's commit (no generation) has no round to race: it
  ** does not hold up every group's heartbeats while it writes */
  if (gen < 0) return KE_NONE;
  pthread_mutex_lock(&mu);
  group *g = find_group(gid, 0);
  if (g && g->n) {
    int i = find_member(g, mid);
    if (i < 0) err = KE_UNKNOWN_MEMBER_ID;
    else if (gen != g->generation) err = KE_ILLEGAL_GENERATION;
    /* As Kafka: a member of the current generation may commit while the
    ** next round gathers (the revoke callback's commit, before it rejoins),
    ** not between the round's end and the handing out of its assignment. */
    else if (g->state == AWAITING_SYNC) err = KE_REBALANCE_IN_PROGRESS;
    else g->m[i]->last_seen = now_ms();
  }
  if (!err) test_commit_delay();
  return err;
}

void kg_commit_end(int32_t gen) {
  if (gen >= 0) pthread_mutex_unlock(&mu);
}
