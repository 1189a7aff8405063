// Storage record decoders on arbitrary bytes (a damaged store must not crash the broker).
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/keys.h"
#include "storage/op_codec.h"
#include "storage/records.h"

namespace {

using namespace warren::storage;

// The input as the payload of a current-format record: a fuzzer cannot forge checksums,
// so without this it would never get past them.
std::string sealed(std::string_view payload) {
  std::string out(9, '\0');
  out[0] = char(kRecordFormat);
  put_be64(out.data() + 1, XXH3_64bits(payload.data(), payload.size()));
  return out.append(payload);
}

void decode_all(std::string_view in) {
  if (auto m = decode_message(in)) {
    std::string bytes(encoded_size(*m), '\0');
    encode_into(*m, bytes.data());
    auto again = decode_message(bytes);
    if (!again || again->body != m->body || again->properties != m->properties ||
        again->expires_at != m->expires_at || again->delivery_count != m->delivery_count ||
        again->ready_at != m->ready_at)
      __builtin_trap();
    // The store's quick look at a record must agree with the full decoding.
    auto t = peek_timers(in);
    if (!t || t->expires_at != m->expires_at || t->ready_at != m->ready_at ||
        t->body_bytes != m->body.size())
      __builtin_trap();
  }
  // A journal record decodes to ops that survive encoding and decoding again.
  if (auto batch = decode_ops(in)) {
    std::string bytes = encode_ops(batch->ops, batch->subset);
    auto again = decode_ops(bytes);
    if (!again || again->subset != batch->subset || again->ops.size() != batch->ops.size())
      __builtin_trap();
    for (size_t i = 0; i < batch->ops.size(); ++i) {
      const Op &a = batch->ops[i], &b = again->ops[i];
      if (a.kind != b.kind || a.db != b.db || a.key != b.key || a.value != b.value ||
          a.queue_id != b.queue_id || a.seq != b.seq || a.seq_end != b.seq_end ||
          a.bytes != b.bytes || bool(a.message) != bool(b.message) ||
          (a.message && a.message->body != b.message->body))
        __builtin_trap();
    }
  }
  (void)decode_queue(in);
  (void)decode_exchange(in);
  (void)decode_binding(in);
  (void)decode_stats(in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  decode_all(in);
  decode_all(sealed(in));
  return 0;
}
