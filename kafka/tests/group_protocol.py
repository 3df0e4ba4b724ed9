#!/usr/bin/env python3
"""group_protocol.py -- the group coordinator at the wire level, scripted so
each race plays out the same way every run.

1. A member that stops heartbeating is expired after its session timeout when
   another member joins; the group moves to the next generation without it,
   its heartbeat then gets UNKNOWN_MEMBER_ID (25), and an OffsetCommit from
   its old generation is refused while the live member's commit lands.
2. With no new join, the live member's own heartbeat finds the dead member's
   session over: REBALANCE_IN_PROGRESS (27); as in Kafka it may still commit
   in its generation before it rejoins (not once the round is over and the
   assignment not yet handed out), and its rejoin makes a generation of one.
3. A commit racing a handover (the server is started with a test hook that
   holds every OffsetCommit between its generation check and its write): the
   member leaves and a new member takes the partition while the commit is in
   the window. A commit answered as done must be the offset the new owner's
   OffsetFetch sees; before the coordinator held its lock across the write, the
   new owner read the old offset and then the commit reported success.
4. A member dies as a round begins, and a leader dies before its SyncGroup:
   their sessions, not the rebalance timeout (minutes for librdkafka), end the
   wait of the members that are there (these ran into the 20 s socket
   timeout before the waiting requests expired sessions themselves).

usage: group_protocol.py SERVER_BINARY SCRATCH_DIR
"""
import os
import struct
import sys
import threading
import time

from kafka_wire import call as wire_call, rstr, s32, s64, scratch_dir, st, start_server, stop_server, time_bound

server, scratch = sys.argv[1], scratch_dir(sys.argv[2], "group_protocol")
time_bound(100)
port = None


def call(key, ver, body):
    return wire_call(port, key, ver, body, client=b"gp", timeout=20)


def join(member, session_ms, rebalance_ms, group=b"grp"):
    body = st(group) + s32(session_ms) + s32(rebalance_ms) + st(member) + st(b"consumer") + s32(1) + st(b"range") + s32(2) + b"md"
    r = call(11, 2, body)  # JoinGroup v2: throttle, error, generation, protocol, leader, member, members
    err, gen = struct.unpack(">hi", r[4:10])
    proto, at = rstr(r, 10)
    leader, at = rstr(r, at)
    me, at = rstr(r, at)
    return err, gen, leader, me


def sync(member, gen, assignments, group=b"grp"):
    body = st(group) + s32(gen) + st(member) + s32(len(assignments)) + b"".join(st(m) + s32(len(a)) + a for m, a in assignments)
    r = call(14, 1, body)
    return struct.unpack(">h", r[4:6])[0]


def heartbeat(member, gen, group=b"grp"):
    return struct.unpack(">h", call(12, 1, st(group) + s32(gen) + st(member))[4:6])[0]


def leave(member, group=b"grp"):
    return struct.unpack(">h", call(13, 1, st(group) + st(member))[4:6])[0]


def commit(member, gen, offset, group=b"grp", topic=b"t"):
    # OffsetCommit v2: group, generation, member, retention, [topic [partition offset metadata]]
    body = st(group) + s32(gen) + st(member) + s64(-1) + s32(1) + st(topic) + s32(1) + s32(0) + s64(offset) + st(b"")
    r = call(8, 2, body)
    return struct.unpack(">h", r[-2:])[0]


def fetch_offset(group=b"grp", topic=b"t"):
    # OffsetFetch v1: group, [topic [partition]] -> [topic [partition offset metadata error]]
    r = call(9, 1, st(group) + s32(1) + st(topic) + s32(1) + s32(0))
    tn, at = rstr(r, 4)
    part, off = struct.unpack(">iq", r[at + 4:at + 16])
    meta, at = rstr(r, at + 16)
    err = struct.unpack(">h", r[at:at + 2])[0]
    assert tn == topic and part == 0 and err == 0, (tn, part, err)
    return off


def expiry_on_join():
    err, gen_a, leader, a = join(b"", 1000, 1500)
    assert err == 0 and gen_a == 1 and leader == a, (err, gen_a, leader, a)
    assert sync(a, gen_a, [(a, b"assignment-a")]) == 0
    assert heartbeat(a, gen_a) == 0
    print(f"ok: member {a.decode()} leads generation 1")
    time.sleep(1.3)  # a stops heartbeating: its 1 s session runs out
    t0 = time.time()
    err, gen_b, leader, b = join(b"", 10000, 3000)
    assert err == 0 and gen_b == 2 and leader == b, (err, gen_b, leader, b)
    print(f"ok: a new member's join expired the silent one: generation 2 led by {b.decode()} "
          f"after {time.time() - t0:.2f}s")
    assert sync(b, gen_b, [(b, b"assignment-b")]) == 0
    assert heartbeat(a, gen_a) == 25, "the expired member's heartbeat"
    print("ok: the expired member's heartbeat gets UNKNOWN_MEMBER_ID (25)")
    assert commit(a, gen_a, 0) == 25, "commit from the expired member"
    assert commit(b, 1, 0) == 22, "commit from a stale generation"  # ILLEGAL_GENERATION
    assert commit(b, gen_b, 0) == 0
    print("ok: commits from the expired member and a stale generation are refused; the live member's lands")
    assert leave(b) == 0


def until_rebalance(member, gen, group):
    """Heartbeat every 0.2 s until the coordinator answers with an error."""
    t0 = time.time()
    while True:
        e = heartbeat(member, gen, group)
        if e:
            return e
        assert time.time() - t0 < 30, "no rebalance was signalled"
        time.sleep(0.2)


def rebalance_with(old, old_gen, old_session_ms, new_session_ms, rebalance_ms, group):
    """A newcomer joins on a thread; old, heartbeating in old_gen, is told
    REBALANCE_IN_PROGRESS (27) and rejoins. Returns old's JoinGroup answer
    and the newcomer's, each (err, generation, leader, member)."""
    box = {}
    th = threading.Thread(target=lambda: box.update(n=join(b"", new_session_ms, rebalance_ms, group)))
    th.start()
    assert until_rebalance(old, old_gen, group) == 27
    mine = join(old, old_session_ms, rebalance_ms, group)
    th.join()
    return mine, box["n"]


def expiry_on_heartbeat():
    g = b"grp2"
    err, gen1, leader, b = join(b"", 30000, 5000, g)
    e = sync(b, gen1, [(b, b"all")], g)
    assert err == 0 and leader == b and e == 0, (err, leader, b, e)
    # c joins; b learns of the round from its heartbeat and rejoins
    (err, gen, leader, me), (cerr, cgen, _, c) = rebalance_with(b, gen1, 30000, 1000, 5000, g)
    box = {}
    assert err == 0 and cerr == 0 and gen == cgen == gen1 + 1 and me == b, (err, cerr, gen, cgen)
    lead, other = (b, c) if leader == b else (c, b)
    th = threading.Thread(target=lambda: box.update(e=sync(other, gen, [], g)))
    th.start()
    assert sync(lead, gen, [(b, b"ab"), (c, b"ac")], g) == 0
    th.join()
    assert box["e"] == 0
    print(f"ok: {b.decode()} and {c.decode()} form generation {gen} of {g.decode()}")
    # c (1 s session) goes silent; b (30 s session) keeps heartbeating and is
    # told of a rebalance once c's session has run out, with no join to start it
    assert until_rebalance(b, gen, g) == 27
    assert heartbeat(c, gen, g) == 25, "the expired member is gone"
    # as Kafka, b may still commit in its generation before it rejoins (the
    # commit of a consumer's revoke callback), and the next generation sees it
    assert commit(b, gen, 0, g) == 0, "a commit of the current generation while the round gathers"
    err, gen2, leader, me = join(b, 30000, 5000, g)
    assert err == 0 and gen2 == gen + 1 and leader == b and me == b, (err, gen2, leader, me)
    assert commit(b, gen2, 0, g) == 27, "a commit between the round's end and its SyncGroup"
    assert sync(b, gen2, [(b, b"all")], g) == 0 and heartbeat(b, gen2, g) == 0
    assert fetch_offset(g) == 0
    print(f"ok: {c.decode()}'s session expired under {b.decode()}'s heartbeats: REBALANCE_IN_PROGRESS, "
          f"then generation {gen2} with {b.decode()} alone")
    assert leave(b, g) == 0


def dead_member_in_round():
    """A member dies as a round begins: the round must not wait for it for the
    rebalance timeout (60 s here, beyond the 20 s socket timeout): its
    session (3 s) runs out while the others wait in JoinGroup."""
    g = b"grp4"
    err, gen1, _, a = join(b"", 30000, 60000, g)
    assert err == 0 and sync(a, gen1, [(a, b"all")], g) == 0
    (err, gen2, leader, _), cres = rebalance_with(a, gen1, 30000, 3000, 60000, g)
    c = cres[3]
    assert err == 0 and cres[0] == 0 and leader == a, (err, cres)
    box = {}
    th = threading.Thread(target=lambda: box.update(e=sync(c, gen2, [], g)))
    th.start()
    assert sync(a, gen2, [(a, b"ha"), (c, b"hc")], g) == 0
    th.join()
    assert box["e"] == 0
    # d joins; a rejoins; c never does
    (err, gen3, leader, _), (derr, dgen, _, d) = rebalance_with(a, gen2, 30000, 30000, 60000, g)
    assert err == 0 and derr == 0 and gen3 == dgen == gen2 + 1, (err, derr, gen3, dgen)
    assert heartbeat(c, gen2, g) == 25, "the dead member left the round"
    print(f"ok: a member dead as a round began ({c.decode()}) was expired by its session, "
          f"not the rebalance timeout: generation {gen3} of {a.decode()} and {d.decode()}")
    for m in (a, d):
        leave(m, g)


def dead_leader_before_sync():
    """The leader dies between its JoinGroup answer and its SyncGroup: the
    follower's SyncGroup (rebalance timeout 60 s) gets REBALANCE_IN_PROGRESS
    once the leader's session (2 s) is over, and its rejoin leads alone."""
    g = b"grp5"
    err, gen1, _, x = join(b"", 2000, 60000, g)
    assert err == 0 and sync(x, gen1, [(x, b"all")], g) == 0
    (err, gen2, leader, _), (yerr, ygen, _, y) = rebalance_with(x, gen1, 2000, 30000, 60000, g)
    assert err == 0 and yerr == 0 and leader == x and ygen == gen2, (err, yerr, leader, ygen, gen2)
    # x, the leader, never sends its SyncGroup
    assert sync(y, gen2, [], g) == 27, "the follower's SyncGroup once the leader's session is over"
    err, gen3, leader, me = join(y, 30000, 60000, g)
    assert err == 0 and gen3 == gen2 + 1 and leader == y, (err, gen3, leader)
    assert sync(y, gen3, [(y, b"all")], g) == 0
    print(f"ok: a leader dead before its SyncGroup: the follower got REBALANCE_IN_PROGRESS after the "
          f"leader's session and leads generation {gen3}")
    leave(y, g)


proc, port = start_server(server, os.path.join(scratch, "g.db"))
try:
    call(3, 4, s32(1) + st(b"t") + b"\x01")  # a topic to commit offsets on
    expiry_on_join()
    expiry_on_heartbeat()
    dead_member_in_round()
    dead_leader_before_sync()
    stop_server(proc)
finally:
    if proc.poll() is None:
        proc.kill()

# 3. the commit/handover race, with every OffsetCommit held 2 s in its window
proc, port = start_server(server, os.path.join(scratch, "g.db"), env={"TAKHIN_KAFKA_TEST_COMMIT_DELAY_MS": "2000"})
try:
    g = b"grp3"
    err, gen_a, leader, a = join(b"", 30000, 5000, g)
    assert err == 0 and leader == a and sync(a, gen_a, [(a, b"t-0")], g) == 0
    box = {}
    th = threading.Thread(target=lambda: box.update(e=commit(a, gen_a, 0, g)))
    th.start()
    time.sleep(0.5)  # the commit is past its generation check, not yet written
    # a leaves (the same as its session running out) and b takes the partition
    assert leave(a, g) == 0
    err, gen_b, leader, b = join(b"", 30000, 5000, g)
    assert err == 0 and leader == b and gen_b > gen_a and sync(b, gen_b, [(b, b"t-0")], g) == 0
    seen = fetch_offset(g)
    th.join()
    print(f"commit from the leaving member: error {box['e']}; the new owner's OffsetFetch: {seen}")
    assert box["e"] != 0 or seen == 0, "a commit answered as done was not what the next owner fetched"
    assert box["e"] == 0, "the commit, checked before the leave, lands"
    print("ok: a commit racing a handover lands before the next generation reads the offset")
    stop_server(proc)
finally:
    if proc.poll() is None:
        proc.kill()
