/* A C application embedding Warren through warren/c.h. Prints "ok" and exits 0. */
#include <stdio.h>
#include <string.h>
#include <warren/c.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  warren_error_t* err = NULL;
  warren_options_t* options = warren_options_create();
  warren_options_set_data_dir(options, argv[1]);
  warren_broker_t* broker = warren_broker_open(options, &err);
  warren_options_destroy(options);
  if (!broker) {
    fprintf(stderr, "%s\n", warren_error_text(err));
    return 1;
  }
  warren_channel_t* ch = warren_channel_open(broker, &err);
  if (warren_queue_declare(ch, "installed-c", WARREN_DURABLE, NULL, NULL, NULL, NULL, &err) != 0)
    return 1;
  warren_basic_publish(ch, "", "installed-c", "hi", 2, NULL, 0, &err);
  warren_delivery_t* d = warren_basic_get(ch, "installed-c", 1, &err);
  size_t size = 0;
  const char* body = d ? warren_delivery_body(d, &size) : NULL;
  int ok = body && size == 2 && memcmp(body, "hi", 2) == 0;
  warren_delivery_destroy(d);
  warren_channel_close(ch);
  warren_broker_close(broker);
  if (ok) printf("ok\n");
  return ok ? 0 : 1;
}
