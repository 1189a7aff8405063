// Field tables and basic properties: decode arbitrary bytes; anything that decodes must
// re-encode and decode to an equal value, and the priority read without decoding (priority
// queues) must be the one the full decoder finds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wire/field_codec.h"
#include "wire/properties_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto table = warren::wire::decode_table(in)) {
    auto again = warren::wire::decode_table(warren::wire::encode_table(*table));
    // NaN floats compare unequal to themselves; compare the bytes instead.
    if (!again || warren::wire::encode_table(*again) != warren::wire::encode_table(*table)) __builtin_trap();
  }
  auto peeked = warren::wire::peek_priority(in);  // must not read past the input either way
  if (auto props = warren::wire::decode_properties(in)) {
    if (peeked != props->priority) __builtin_trap();
    auto again = warren::wire::decode_properties(warren::wire::encode_properties(*props));
    if (!again || warren::wire::encode_properties(*again) != warren::wire::encode_properties(*props))
      __builtin_trap();
  }
  return 0;
}
