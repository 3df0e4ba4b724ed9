/*
** groups.h -- the group coordinator of takhin-server: consumer group
** membership and generations (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
** with client-side assignment as Kafka does. State lives in memory, as in
** Kafka only committed offsets (in the store) outlive the server.
*/
#ifndef TAKHIN_KAFKA_GROUPS_H
#define TAKHIN_KAFKA_GROUPS_H

#include "handlers.h"
#include "proto.h"

int kg_join_group(kh_ctx *c, kp_reader *r, int16_t v, kp_str client_id, kp_writer *w);
int kg_sync_group(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w);
int kg_heartbeat(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w);
int kg_leave_group(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w);
/* Begin an OffsetCommit of member of group at generation: a Kafka error code
** (generation < 0, a simple consumer, or an unknown group always may). The
** coordinator stays locked (for generation >= 0) until
** kg_commit_end(generation), which must follow whatever this returns: the offsets are written while no rebalance can complete, so a
** commit answered as done is one the next generation's OffsetFetch sees. */
int16_t kg_commit_begin(kp_str group, int32_t generation, kp_str member);
void kg_commit_end(int32_t generation);

#endif
