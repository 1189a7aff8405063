/* The C API (warren/c.h), compiled as C11: a broker on a real data directory, reopened to
 * check durability; errors as reply codes and texts; consume with a callback. Exits
 * non-zero at the first failed check. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "warren/c.h"

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

static char data_dir[] = "/tmp/warren-c-api-XXXXXX";

static warren_broker_t* open_broker(int durability) {
  warren_options_t* options = warren_options_create();
  warren_options_set_data_dir(options, data_dir);
  warren_options_set_durability(options, durability);
  warren_error_t* err = NULL;
  warren_broker_t* broker = warren_broker_open(options, &err);
  warren_options_destroy(options);
  if (!broker) fprintf(stderr, "open: %d %s\n", warren_error_code(err), warren_error_text(err));
  warren_error_free(err);
  return broker;
}

static void publish_confirm_and_get_after_reopen(void) {
  warren_broker_t* broker = open_broker(WARREN_DURABILITY_FSYNC);
  CHECK(broker != NULL);
  warren_error_t* err = NULL;
  warren_channel_t* ch = warren_channel_open(broker, &err);
  CHECK(ch != NULL);
  uint32_t count = 99;
  CHECK(warren_queue_declare(ch, "c-jobs", WARREN_DURABLE, NULL, NULL, &count, NULL, &err) == 0);
  CHECK(count == 0);
  CHECK(warren_confirm_select(ch, &err) == 0);
  warren_properties_t* props = warren_properties_create();
  warren_properties_set_delivery_mode(props, 2);
  CHECK(warren_properties_set(props, "message_id", "m-1") == 0);
  CHECK(warren_properties_set(props, "no_such_property", "x") == 406);
  warren_table_t* headers = warren_table_create();
  warren_table_set_int(headers, "attempt", 3);
  warren_table_set_string(headers, "origin", "sensor-7");
  warren_properties_set_headers(props, headers);
  warren_table_destroy(headers);
  CHECK(warren_basic_publish(ch, "", "c-jobs", "hello", 5, props, 0, &err) == 1);
  CHECK(warren_basic_publish(ch, "", "c-jobs", "world", 5, props, 0, &err) == 2);
  warren_properties_destroy(props);
  int all_acked = 0;
  CHECK(warren_wait_for_confirms(ch, 10000, &all_acked, &err) == 0);
  CHECK(all_acked == 1);
  warren_channel_close(ch);
  warren_broker_close(broker);

  broker = open_broker(WARREN_DURABILITY_FSYNC); /* confirmed means on disk */
  CHECK(broker != NULL);
  ch = warren_channel_open(broker, &err);
  CHECK(ch != NULL);
  warren_delivery_t* d = warren_basic_get(ch, "c-jobs", 0, &err);
  CHECK(d != NULL);
  size_t size = 0;
  const char* body = warren_delivery_body(d, &size);
  CHECK(size == 5 && memcmp(body, "hello", 5) == 0);
  CHECK(strcmp(warren_delivery_property(d, "message_id"), "m-1") == 0);
  CHECK(warren_delivery_property(d, "reply_to") == NULL);
  CHECK(warren_delivery_delivery_mode(d) == 2);
  int64_t attempt = 0;
  CHECK(warren_delivery_header_int(d, "attempt", &attempt) == 1 && attempt == 3);
  CHECK(strcmp(warren_delivery_header_string(d, "origin"), "sensor-7") == 0);
  CHECK(warren_delivery_header_string(d, "missing") == NULL);
  CHECK(warren_delivery_message_count(d) == 1);
  CHECK(strcmp(warren_delivery_routing_key(d), "c-jobs") == 0);
  CHECK(warren_basic_ack(ch, warren_delivery_tag(d), 0, &err) == 0);
  warren_delivery_destroy(d);
  CHECK(warren_channel_flush(ch, 10000, &err) == 0);
  warren_channel_close(ch);
  warren_broker_close(broker);
  CHECK(err == NULL);
}

static void errors_carry_rabbitmq_codes_and_texts(void) {
  warren_broker_t* broker = open_broker(WARREN_DURABILITY_FSYNC);
  CHECK(broker != NULL);
  warren_error_t* err = NULL;
  warren_channel_t* ch = warren_channel_open(broker, &err);
  CHECK(ch != NULL);
  CHECK(warren_queue_declare(ch, "nope", WARREN_PASSIVE, NULL, NULL, NULL, NULL, &err) == 404);
  CHECK(warren_error_code(err) == 404);
  CHECK(strcmp(warren_error_text(err), "NOT_FOUND - no queue 'nope' in vhost '/'") == 0);
  CHECK(warren_channel_is_open(ch) == 0); /* a channel error closes the channel */
  /* The next call on the closed channel reports why it closed. */
  CHECK(warren_queue_purge(ch, "c-jobs", NULL, &err) == 404);
  warren_channel_close(ch);

  ch = warren_channel_open(broker, &err);
  CHECK(ch != NULL);
  warren_table_t* args = warren_table_create();
  warren_table_set_string(args, "x-max-length", "ten");
  CHECK(warren_queue_declare(ch, "bad-args", 0, args, NULL, NULL, NULL, &err) == 406);
  CHECK(strstr(warren_error_text(err), "PRECONDITION_FAILED - invalid arg 'x-max-length'") != NULL);
  warren_table_destroy(args);
  warren_channel_close(ch);
  warren_error_free(err);

  /* A second broker on the same directory is refused, with a text. */
  err = NULL;
  warren_options_t* options = warren_options_create();
  warren_options_set_data_dir(options, data_dir);
  CHECK(warren_broker_open(options, &err) == NULL);
  warren_options_destroy(options);
  CHECK(err != NULL && warren_error_code(err) != 0 && strlen(warren_error_text(err)) > 0);
  warren_error_free(err);
  warren_broker_close(broker);
}

struct consumed {
  warren_channel_t* channel;
  pthread_mutex_t mutex;
  pthread_cond_t changed;
  int count;
  int bodies_ok;
};

static void on_delivery(void* state, const warren_delivery_t* delivery) {
  struct consumed* c = state;
  size_t size = 0;
  const char* body = warren_delivery_body(delivery, &size);
  warren_basic_ack(c->channel, warren_delivery_tag(delivery), 0, NULL); /* from the callback */
  pthread_mutex_lock(&c->mutex);
  if (size == 3 && memcmp(body, "job", 3) == 0) c->bodies_ok++;
  c->count++;
  pthread_cond_signal(&c->changed);
  pthread_mutex_unlock(&c->mutex);
}

/* Waits (20 s at most) until the callback has seen `want` deliveries; returns how many. */
static int wait_for_deliveries(struct consumed* c, int want) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 20;
  pthread_mutex_lock(&c->mutex);
  while (c->count < want &&
         pthread_cond_timedwait(&c->changed, &c->mutex, &deadline) != ETIMEDOUT) {
  }
  int count = c->count;
  pthread_mutex_unlock(&c->mutex);
  return count;
}

static void consume_with_a_callback_then_replay(void) {
  warren_broker_t* broker = open_broker(WARREN_DURABILITY_NOSYNC);
  CHECK(broker != NULL);
  warren_error_t* err = NULL;
  warren_channel_t* ch = warren_channel_open(broker, &err);
  CHECK(ch != NULL);
  char* name = NULL;
  CHECK(warren_queue_declare(ch, "", WARREN_EXCLUSIVE, NULL, &name, NULL, NULL, &err) == 0);
  CHECK(strncmp(name, "amq.gen-", 8) == 0);
  CHECK(warren_confirm_select(ch, &err) == 0);
  for (int i = 0; i < 100; i++) warren_basic_publish(ch, "", name, "job", 3, NULL, 0, &err);
  int all_acked = 0;
  CHECK(warren_wait_for_confirms(ch, 10000, &all_acked, &err) == 0 && all_acked);

  warren_channel_t* consumer = warren_channel_open(broker, &err);
  CHECK(consumer != NULL);
  struct consumed c = {
      .channel = consumer, .mutex = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
  CHECK(warren_basic_qos(consumer, 10, &err) == 0);
  char* tag = warren_basic_consume(consumer, name, 0, on_delivery, &c, &err);
  CHECK(tag != NULL);
  CHECK(wait_for_deliveries(&c, 100) == 100);
  pthread_mutex_lock(&c.mutex);
  int bodies_ok = c.bodies_ok;
  pthread_mutex_unlock(&c.mutex);
  CHECK(bodies_ok == 100);
  CHECK(warren_basic_cancel(consumer, tag, &err) == 0);
  warren_free(tag);
  warren_channel_close(consumer);

  /* A dead-letter queue emptied back into its work queue. */
  CHECK(warren_queue_declare(ch, "c-dead", 0, NULL, NULL, NULL, NULL, &err) == 0);
  warren_table_t* args = warren_table_create();
  warren_table_set_string(args, "x-dead-letter-exchange", "");
  warren_table_set_string(args, "x-dead-letter-routing-key", "c-dead");
  CHECK(warren_queue_declare(ch, "c-work", 0, args, NULL, NULL, NULL, &err) == 0);
  warren_table_destroy(args);
  warren_basic_publish(ch, "", "c-work", "job", 3, NULL, 0, &err);
  CHECK(warren_wait_for_confirms(ch, 10000, &all_acked, &err) == 0);
  warren_delivery_t* d = warren_basic_get(ch, "c-work", 0, &err);
  CHECK(d != NULL);
  CHECK(warren_basic_reject(ch, warren_delivery_tag(d), 0, &err) == 0); /* dead-lettered */
  warren_delivery_destroy(d);
  CHECK(warren_channel_flush(ch, 10000, &err) == 0);
  CHECK(warren_broker_replay(broker, "c-dead", NULL, 0, &err) == 1);
  uint32_t count = 0;
  CHECK(warren_queue_declare(ch, "c-work", WARREN_PASSIVE, NULL, NULL, &count, NULL, &err) == 0);
  CHECK(count == 1);
  CHECK(warren_broker_replay(broker, "no-such-queue", "c-work", 0, &err) == 0);
  CHECK(warren_error_code(err) == 404);
  warren_error_free(err);
  warren_free(name);
  warren_channel_close(ch);
  warren_broker_close(broker);
}

static void an_empty_queue_gives_null_without_an_error(void) {
  warren_broker_t* broker = open_broker(WARREN_DURABILITY_FSYNC);
  CHECK(broker != NULL);
  warren_error_t* err = NULL;
  warren_channel_t* ch = warren_channel_open(broker, &err);
  CHECK(warren_queue_declare(ch, "c-empty", 0, NULL, NULL, NULL, NULL, &err) == 0);
  CHECK(warren_basic_get(ch, "c-empty", 1, &err) == NULL);
  CHECK(err == NULL);
  CHECK(warren_channel_is_open(ch) == 1);
  /* nack with requeue: the message comes back, marked redelivered. */
  warren_basic_publish(ch, "", "c-empty", "again", 5, NULL, 0, &err);
  warren_delivery_t* d = warren_basic_get(ch, "c-empty", 0, &err);
  CHECK(d != NULL && warren_delivery_redelivered(d) == 0);
  CHECK(warren_basic_nack(ch, warren_delivery_tag(d), 0, 1, &err) == 0);
  warren_delivery_destroy(d);
  d = warren_basic_get(ch, "c-empty", 1, &err);
  CHECK(d != NULL && warren_delivery_redelivered(d) == 1);
  warren_delivery_destroy(d);
  /* An unknown delivery tag closes the channel with RabbitMQ's 406. */
  warren_basic_ack(ch, 99, 0, &err);
  CHECK(warren_queue_purge(ch, "c-empty", NULL, &err) == 406);
  CHECK(strcmp(warren_error_text(err), "PRECONDITION_FAILED - unknown delivery tag 99") == 0);
  warren_error_free(err);
  warren_channel_close(ch);
  warren_broker_close(broker);
}

int main(void) {
  if (!mkdtemp(data_dir)) return 2;
  publish_confirm_and_get_after_reopen();
  errors_carry_rabbitmq_codes_and_texts();
  consume_with_a_callback_then_replay();
  an_empty_queue_gives_null_without_an_error();
  char command[128];
  snprintf(command, sizeof command, "rm -rf '%s'", data_dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", data_dir);
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  else
    printf("c_api_test: all checks passed\n");
  return failures ? 1 : 0;
}
