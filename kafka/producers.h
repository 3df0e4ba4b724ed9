/*
** producers.h -- idempotent producers (InitProducerId and the sequence
** checks of Produce), as Kafka's ProducerStateManager does them.
*/
#ifndef TAKHIN_KAFKA_PRODUCERS_H
#define TAKHIN_KAFKA_PRODUCERS_H

#include "handlers.h"

int kpid_init_producer_id(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w);

/* Append one produced batch (validated by the store), deduplicating it when
** it carries a producer id: a retry of one of the producer's last 5 batches
** gets that batch's offset back without a second append; a sequence gap or
** a stale epoch is refused. batch is at least 61 bytes. Returns the Kafka
** error code of the sequence check (0 when it passed); *rc the takhin
** status of the append (TAKHIN_OK when none was tried); *base the offset. */
int16_t kpid_produce(kh_ctx *c, const char *topic, int32_t partition, const uint8_t *batch,
                     size_t len, int64_t *base, int *rc);

#endif
