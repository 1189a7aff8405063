/* Warren's C API: the in-process broker for C programs and for other languages' foreign
 * function interfaces (Python's ctypes, ...), in the style of LevelDB's c.h.
 *
 *   warren_error_t* err = NULL;
 *   warren_options_t* options = warren_options_create();
 *   warren_options_set_data_dir(options, "/var/lib/app/queue");
 *   warren_broker_t* broker = warren_broker_open(options, &err);
 *   warren_options_destroy(options);
 *   if (!broker) { fprintf(stderr, "%s\n", warren_error_text(err)); warren_error_free(err); }
 *
 * Handles are opaque; each *_create / *_open has a matching *_destroy / *_close.
 *
 * Errors: every call that can fail takes `warren_error_t** err` last. On failure it stores
 * an error there (if err is not NULL; a previous error there is freed first) and returns
 * NULL, 0, or the error's code, as the function says. The code is the AMQP reply code
 * RabbitMQ would send (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...), or WARREN_TIMEOUT; the
 * text is RabbitMQ's reply text. Free it with warren_error_free. No C++ exception ever
 * leaves these functions.
 *
 * Threads, as in the C++ API (warren/channel.h): a channel may be used from any thread,
 * but not from two at once. Consume callbacks run on the broker's own thread, one at a
 * time; they may call channel functions (ack, publish) but should hand long work elsewhere.
 * Strings returned to the caller are freed with warren_free.
 */
#ifndef WARREN_C_H_
#define WARREN_C_H_

#include <stddef.h>
#include <stdint.h>

#include "warren/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct warren_options_t warren_options_t;
typedef struct warren_broker_t warren_broker_t;
typedef struct warren_channel_t warren_channel_t;
typedef struct warren_table_t warren_table_t;
typedef struct warren_properties_t warren_properties_t;
typedef struct warren_delivery_t warren_delivery_t;
typedef struct warren_error_t warren_error_t;

/* Error codes besides AMQP's reply codes. */
enum {
  WARREN_OK = 0,
  WARREN_TIMEOUT = 1, /* a wait ran past its deadline; nothing was lost */
};

/* ---- errors and memory ---------------------------------------------------------------- */
WARREN_EXPORT int warren_error_code(const warren_error_t* err);
WARREN_EXPORT const char* warren_error_text(const warren_error_t* err);
WARREN_EXPORT void warren_error_free(warren_error_t* err);
WARREN_EXPORT void warren_free(void* ptr); /* strings this API returned */

/* ---- options -------------------------------------------------------------------------- */
enum { WARREN_DURABILITY_FSYNC = 0, WARREN_DURABILITY_NOSYNC = 1, WARREN_DURABILITY_IN_MEMORY = 2 };
WARREN_EXPORT warren_options_t* warren_options_create(void);
WARREN_EXPORT void warren_options_destroy(warren_options_t* options);
WARREN_EXPORT void warren_options_set_data_dir(warren_options_t* options, const char* dir);
/* WARREN_DURABILITY_*; the default, fsync, is what warren/options.h describes. */
WARREN_EXPORT void warren_options_set_durability(warren_options_t* options, int durability);
WARREN_EXPORT void warren_options_set_max_message_size(warren_options_t* options, uint64_t bytes);

/* ---- the broker ----------------------------------------------------------------------- */
/* NULL on failure (store locked by another process, damaged, unwritable). */
WARREN_EXPORT warren_broker_t* warren_broker_open(const warren_options_t* options,
                                                  warren_error_t** err);
/* Closes the broker's channels (their unacknowledged messages are requeued), then the store.
 * Channels opened on it must still be closed with warren_channel_close. */
WARREN_EXPORT void warren_broker_close(warren_broker_t* broker);
/* Moves (copy != 0: copies) the ready messages of queue `from` to queue `to` in vhost "/",
 * oldest first; `to` NULL: each back to the queue it was dead-lettered from. Returns how
 * many, once they are on disk; 0 with *err set on failure. */
WARREN_EXPORT uint64_t warren_broker_replay(warren_broker_t* broker, const char* from,
                                            const char* to, int copy, warren_error_t** err);

/* ---- channels ------------------------------------------------------------------------- */
WARREN_EXPORT warren_channel_t* warren_channel_open(warren_broker_t* broker, warren_error_t** err);
/* Closes the channel (its unacknowledged messages are requeued) and frees the handle. Once it
 * returns, no callback of this channel runs again. */
WARREN_EXPORT void warren_channel_close(warren_channel_t* channel);
/* 1 while open; 0 once the broker closed it for an error (the next call on it returns that
 * error). */
WARREN_EXPORT int warren_channel_is_open(const warren_channel_t* channel);

/* ---- field tables (arguments, headers) ------------------------------------------------ */
WARREN_EXPORT warren_table_t* warren_table_create(void);
WARREN_EXPORT void warren_table_destroy(warren_table_t* table);
WARREN_EXPORT void warren_table_set_int(warren_table_t* table, const char* key, int64_t value);
WARREN_EXPORT void warren_table_set_string(warren_table_t* table, const char* key,
                                           const char* value);
WARREN_EXPORT void warren_table_set_bool(warren_table_t* table, const char* key, int value);

/* ---- declarations --------------------------------------------------------------------- */
enum {
  WARREN_DURABLE = 1,
  WARREN_EXCLUSIVE = 2,
  WARREN_AUTO_DELETE = 4,
  WARREN_PASSIVE = 8,
  WARREN_INTERNAL = 16, /* exchanges only */
};
/* Functions returning int return 0 on success, else the error's code (also in *err). */

/* queue "" gets a server-generated name, stored in *declared_name if that is not NULL (free
 * it with warren_free). message_count and consumer_count may be NULL. */
WARREN_EXPORT int warren_queue_declare(warren_channel_t* channel, const char* queue, int flags,
                                       const warren_table_t* arguments, char** declared_name,
                                       uint32_t* message_count, uint32_t* consumer_count,
                                       warren_error_t** err);
WARREN_EXPORT int warren_queue_bind(warren_channel_t* channel, const char* queue,
                                    const char* exchange, const char* routing_key,
                                    const warren_table_t* arguments, warren_error_t** err);
WARREN_EXPORT int warren_queue_unbind(warren_channel_t* channel, const char* queue,
                                      const char* exchange, const char* routing_key,
                                      const warren_table_t* arguments, warren_error_t** err);
/* purged / deleted: how many ready messages went (may be NULL). */
WARREN_EXPORT int warren_queue_purge(warren_channel_t* channel, const char* queue, uint32_t* purged,
                                     warren_error_t** err);
WARREN_EXPORT int warren_queue_delete(warren_channel_t* channel, const char* queue, int if_unused,
                                      int if_empty, uint32_t* deleted, warren_error_t** err);
/* type: "direct", "fanout", "topic" or "headers". */
WARREN_EXPORT int warren_exchange_declare(warren_channel_t* channel, const char* exchange,
                                          const char* type, int flags,
                                          const warren_table_t* arguments, warren_error_t** err);
WARREN_EXPORT int warren_exchange_delete(warren_channel_t* channel, const char* exchange,
                                         int if_unused, warren_error_t** err);

/* ---- publishing ----------------------------------------------------------------------- */
WARREN_EXPORT warren_properties_t* warren_properties_create(void);
WARREN_EXPORT void warren_properties_destroy(warren_properties_t* properties);
/* name: "content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
 * "message_id", "type", "user_id", "app_id" or "cluster_id". Returns 0, or 406 for another name. */
WARREN_EXPORT int warren_properties_set(warren_properties_t* properties, const char* name,
                                        const char* value);
WARREN_EXPORT void warren_properties_set_delivery_mode(warren_properties_t* properties,
                                                       uint8_t mode);
WARREN_EXPORT void warren_properties_set_priority(warren_properties_t* properties,
                                                  uint8_t priority);
WARREN_EXPORT void warren_properties_set_timestamp(warren_properties_t* properties,
                                                   uint64_t seconds);
/* Copies the table. */
WARREN_EXPORT void warren_properties_set_headers(warren_properties_t* properties,
                                                 const warren_table_t* headers);

WARREN_EXPORT int warren_confirm_select(warren_channel_t* channel, warren_error_t** err);
/* properties may be NULL. Returns the publish sequence number in confirm mode (from 1), else
 * 0; 0 with *err set if the channel is closed. A publish to a missing exchange closes the
 * channel (404), as on the wire: the next call reports it. */
WARREN_EXPORT uint64_t warren_basic_publish(warren_channel_t* channel, const char* exchange,
                                            const char* routing_key, const void* body,
                                            size_t body_size, const warren_properties_t* properties,
                                            int mandatory, warren_error_t** err);
/* Waits until every publish so far is confirmed. Returns 0 and sets *all_acked to 1, or to 0
 * if any was nacked since the last wait; WARREN_TIMEOUT past the deadline. */
WARREN_EXPORT int warren_wait_for_confirms(warren_channel_t* channel, int64_t timeout_ms,
                                           int* all_acked, warren_error_t** err);

/* ---- consuming ------------------------------------------------------------------------ */
WARREN_EXPORT int warren_basic_qos(warren_channel_t* channel, uint16_t prefetch_count,
                                   warren_error_t** err);
/* The oldest ready message, or NULL if the queue is empty (*err untouched) or on failure
 * (*err set). Free it with warren_delivery_destroy. */
WARREN_EXPORT warren_delivery_t* warren_basic_get(warren_channel_t* channel, const char* queue,
                                                  int no_ack, warren_error_t** err);
/* Runs on the broker's thread for each delivery; the delivery is valid during the call. */
typedef void (*warren_deliver_fn)(void* state, const warren_delivery_t* delivery);
/* Returns the consumer tag (free it with warren_free), or NULL with *err set. */
WARREN_EXPORT char* warren_basic_consume(warren_channel_t* channel, const char* queue, int no_ack,
                                         warren_deliver_fn callback, void* state,
                                         warren_error_t** err);
WARREN_EXPORT int warren_basic_cancel(warren_channel_t* channel, const char* consumer_tag,
                                      warren_error_t** err);
WARREN_EXPORT int warren_basic_ack(warren_channel_t* channel, uint64_t delivery_tag, int multiple,
                                   warren_error_t** err);
WARREN_EXPORT int warren_basic_nack(warren_channel_t* channel, uint64_t delivery_tag, int multiple,
                                    int requeue, warren_error_t** err);
WARREN_EXPORT int warren_basic_reject(warren_channel_t* channel, uint64_t delivery_tag, int requeue,
                                      warren_error_t** err);
/* Waits until everything the channel did so far (acknowledgements included) is on disk. */
WARREN_EXPORT int warren_channel_flush(warren_channel_t* channel, int64_t timeout_ms,
                                       warren_error_t** err);

/* ---- deliveries ----------------------------------------------------------------------- */
WARREN_EXPORT void warren_delivery_destroy(warren_delivery_t* delivery);
WARREN_EXPORT uint64_t warren_delivery_tag(const warren_delivery_t* delivery);
WARREN_EXPORT int warren_delivery_redelivered(const warren_delivery_t* delivery);
WARREN_EXPORT const void* warren_delivery_body(const warren_delivery_t* delivery, size_t* size);
WARREN_EXPORT const char* warren_delivery_exchange(const warren_delivery_t* delivery);
WARREN_EXPORT const char* warren_delivery_routing_key(const warren_delivery_t* delivery);
WARREN_EXPORT const char* warren_delivery_consumer_tag(const warren_delivery_t* delivery);
/* basic_get only: ready messages left in the queue. */
WARREN_EXPORT uint32_t warren_delivery_message_count(const warren_delivery_t* delivery);
/* A string property by the names warren_properties_set takes; NULL if absent. */
WARREN_EXPORT const char* warren_delivery_property(const warren_delivery_t* delivery,
                                                   const char* name);
WARREN_EXPORT uint8_t
warren_delivery_delivery_mode(const warren_delivery_t* delivery); /* 0: absent */
/* A header's value: 1 and *value set if it is there with that type, else 0. */
WARREN_EXPORT int warren_delivery_header_int(const warren_delivery_t* delivery, const char* key,
                                             int64_t* value);
WARREN_EXPORT const char* warren_delivery_header_string(const warren_delivery_t* delivery,
                                                        const char* key);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* WARREN_C_H_ */
