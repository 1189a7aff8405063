#include "core/routing.h"

#include <gtest/gtest.h>

namespace warren::core {
namespace {

struct TopicCase {
  const char* pattern;
  const char* key;
  bool match;
};

// The cases RabbitMQ 3.10 was observed to route (rabbitmq-semantics.md §9).
TEST(Topic, MatchesAsRabbitMQDoes) {
  const TopicCase cases[] = {
      {"*", "a", true},
      {"*", "", false},
      {"", "", true},
      {"", "a", false},
      {"#", "", true},
      {"#", "a.b.c", true},
      {"lazy.#", "lazy", true},
      {"lazy.#", "lazy.", true},
      {"lazy.#", "lazy.orange.male.rabbit", true},
      {"a.#.b", "a.b", true},
      {"a.#.b", "a.x.y.b", true},
      {"a.#.b", "a..b", true},
      {"#.z", "z", true},
      {"#.z", ".z", true},
      {"a.*.#", "a.b", true},
      {"x.*", "x.", true},
      {"x.*", "x", false},
      {"*.orange.*", "quick.orange.rabbit", true},
      {"*.orange.*", "quick.orange.male.rabbit", false},
      {"a.b", "a.b.c", false},
      {"#.#", "", true},
      {"a.#.#.b", "a.b", true},
  };
  for (const auto& c : cases)
    EXPECT_EQ(topic_matches(c.pattern, c.key), c.match) << c.pattern << " vs '" << c.key << "'";
}

TEST(Topic, ManyHashesStayFast) {
  std::string pattern, key;
  for (int i = 0; i < 60; ++i) pattern += "#.";
  pattern += "z";
  for (int i = 0; i < 100; ++i) key += "a.";
  key += "y";
  EXPECT_FALSE(topic_matches(pattern, key));  // exponential backtracking would never return
}

TEST(Headers, AllAnyAndXKeys) {
  FieldTable headers{{"format", FieldValue("pdf")}, {"type", FieldValue("report")}};
  FieldTable all{{"x-match", FieldValue("all")},
                 {"format", FieldValue("pdf")},
                 {"type", FieldValue("report")}};
  FieldTable any{{"x-match", FieldValue("any")},
                 {"format", FieldValue("zip")},
                 {"type", FieldValue("report")}};
  FieldTable none_match{{"x-match", FieldValue("any")}, {"format", FieldValue("zip")}};
  EXPECT_TRUE(headers_match(HeadersMatch::all, all, &headers));
  EXPECT_TRUE(headers_match(HeadersMatch::any, any, &headers));
  EXPECT_FALSE(headers_match(HeadersMatch::any, none_match, &headers));
  EXPECT_FALSE(headers_match(HeadersMatch::all, all, nullptr));
  // Only x- keys: all matches everything, any matches nothing.
  FieldTable only_x{{"x-foo", FieldValue("bar")}};
  EXPECT_TRUE(headers_match(HeadersMatch::all, only_x, &headers));
  EXPECT_FALSE(headers_match(HeadersMatch::any, only_x, &headers));
  // int 1 is not string "1".
  FieldTable one{{"n", FieldValue(1)}};
  FieldTable has_string_one{{"n", FieldValue("1")}};
  EXPECT_FALSE(headers_match(HeadersMatch::all, one, &has_string_one));
}

TEST(Headers, BadXMatchIsRefusedWithRabbitText) {
  HeadersMatch mode;
  Status s = parse_headers_match(FieldTable{{"x-match", FieldValue("bogus")}}, &mode);
  EXPECT_EQ(s.code(), ReplyCode::precondition_failed);
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - Invalid x-match field value <<\"bogus\">>; expected all, any, "
            "all-with-x, or any-with-x");
}

}  // namespace
}  // namespace warren::core
