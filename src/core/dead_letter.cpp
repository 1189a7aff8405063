#include "core/dead_letter.h"

#include <algorithm>

#include "wire/properties_codec.h"

namespace warren::core {
namespace {

const std::string* string_field(const FieldTable& t, std::string_view key) {
  const FieldValue* v = t.find(key);
  return v ? v->as<std::string>() : nullptr;
}

FieldArray original_routing_keys(const storage::MessageData& m, const BasicProperties& p) {
  FieldArray keys{FieldValue(m.routing_key)};
  if (p.headers)
    if (const FieldValue* cc = p.headers->find("CC"))
      if (const auto* list = cc->as<FieldArray>())
        for (const auto& k : *list)
          if (k.as<std::string>()) keys.push_back(k);
  return keys;
}

// The entry for a queue and reason seen again: count + 1, first time/exchange/keys kept, and
// its keys in alphabetical order, as RabbitMQ rewrites it.
FieldTable counted_again(const FieldTable& old) {
  int64_t count = 1;
  if (const FieldValue* c = old.find("count"))
    if (auto n = c->as_integer()) count = *n + 1;
  FieldTable updated;
  updated.set("count", FieldValue(count));
  for (const char* key : {"exchange", "original-expiration", "queue", "reason", "routing-keys", "time"})
    if (const FieldValue* v = old.find(key)) updated.set(key, *v);
  return updated;
}

}  // namespace

DeadLettered dead_letter_copy(const storage::MessageData& original, std::string_view queue,
                              std::string_view reason, const DeadLetterTarget& target, uint64_t now) {
  BasicProperties p = wire::decode_properties(original.properties).value_or(BasicProperties{});
  FieldTable headers = p.headers.value_or(FieldTable{});
  FieldArray deaths;
  if (const FieldValue* v = headers.find("x-death"))
    if (const auto* a = v->as<FieldArray>()) deaths = *a;
  bool first_death = deaths.empty();

  auto same = std::find_if(deaths.begin(), deaths.end(), [&](const FieldValue& d) {
    const auto* t = d.as<FieldTable>();
    const std::string* q = t ? string_field(*t, "queue") : nullptr;
    const std::string* r = t ? string_field(*t, "reason") : nullptr;
    return q && r && *q == queue && *r == reason;
  });
  FieldTable entry;
  if (same != deaths.end()) {
    entry = counted_again(*same->as<FieldTable>());
    deaths.erase(same);
  } else {
    entry.set("count", FieldValue(int64_t(1)));
    entry.set("reason", FieldValue(std::string(reason)));
    entry.set("queue", FieldValue(std::string(queue)));
    entry.set("time", FieldValue(Timestamp{now}));
    entry.set("exchange", FieldValue(original.exchange));
    entry.set("routing-keys", FieldValue(original_routing_keys(original, p)));
    if (p.expiration) entry.set("original-expiration", FieldValue(*p.expiration));
  }
  deaths.insert(deaths.begin(), FieldValue(std::move(entry)));
  headers.set("x-death", FieldValue(std::move(deaths)));
  if (first_death) {
    headers.set("x-first-death-reason", FieldValue(std::string(reason)));
    headers.set("x-first-death-queue", FieldValue(std::string(queue)));
    headers.set("x-first-death-exchange", FieldValue(original.exchange));
  }
  headers.set("x-last-death-reason", FieldValue(std::string(reason)));
  headers.set("x-last-death-queue", FieldValue(std::string(queue)));
  headers.set("x-last-death-exchange", FieldValue(original.exchange));

  DeadLettered out;
  if (target.routing_key) {
    out.routing_keys = {*target.routing_key};
    headers.erase("CC");
  } else {
    for (const auto& k : original_routing_keys(original, p)) out.routing_keys.push_back(*k.as<std::string>());
  }
  p.expiration.reset();
  p.headers = std::move(headers);
  out.message.flags = original.flags;
  out.message.exchange = target.exchange;
  out.message.routing_key = out.routing_keys.front();
  out.message.properties = wire::encode_properties(p);
  out.message.body = original.body;
  out.properties = std::move(p);
  return out;
}

}  // namespace warren::core
