#include <gtest/gtest.h>

#include "wire/field_codec.h"
#include "wire/properties_codec.h"

namespace warren::wire {
namespace {

FieldTable every_type() {
  FieldTable nested{{"k", FieldValue(std::string("v"))}};
  return FieldTable{
      {"bool", FieldValue(true)},
      {"i8", FieldValue(int8_t(-5))},
      {"u8", FieldValue(uint8_t(200))},
      {"i16", FieldValue(int16_t(-300))},
      {"u16", FieldValue(uint16_t(60000))},
      {"i32", FieldValue(int32_t(-70000))},
      {"u32", FieldValue(uint32_t(4000000000u))},
      {"i64", FieldValue(int64_t(-5000000000))},
      {"f", FieldValue(1.5f)},
      {"d", FieldValue(2.25)},
      {"dec", FieldValue(Decimal{2, 12345})},
      {"str", FieldValue(std::string("hello"))},
      {"bytes", FieldValue(ByteArray{std::string("\0\1\2", 3)})},
      {"array", FieldValue(FieldArray{FieldValue(1), FieldValue(std::string("two"))})},
      {"ts", FieldValue(Timestamp{1700000000})},
      {"table", FieldValue(nested)},
      {"void", FieldValue(Void{})},
  };
}

TEST(FieldCodec, EveryTypeRoundTripsWithItsWireType) {
  FieldTable t = every_type();
  auto decoded = decode_table(encode_table(t));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, t);
  EXPECT_EQ(decoded->find("i16")->type_char(), 's');
  EXPECT_EQ(decoded->find("u32")->type_char(), 'i');
  EXPECT_EQ(decoded->find("i64")->type_char(), 'l');
}

TEST(FieldCodec, KeepsEntryOrder) {
  FieldTable t{{"b", FieldValue(1)}, {"a", FieldValue(2)}};
  auto decoded = decode_table(encode_table(t));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->entries()[0].first, "b");
  EXPECT_EQ(decoded->entries()[1].first, "a");
}

TEST(FieldCodec, RefusesTruncatedInput) {
  std::string bytes = encode_table(every_type());
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_table(std::string_view(bytes).substr(0, n))) << "prefix of " << n;
}

TEST(FieldCodec, RefusesUnknownTypeLetter) {
  std::string bytes("\0\0\0\3\1kZ", 7);
  EXPECT_FALSE(decode_table(bytes));
}

TEST(FieldCodec, RefusesNestingBeyondTheLimit) {
  FieldTable t;
  for (int i = 0; i < kMaxFieldDepth + 2; ++i) t = FieldTable{{"n", FieldValue(t)}};
  EXPECT_FALSE(decode_table(encode_table(t)));
  FieldTable shallow;
  for (int i = 0; i < 10; ++i) shallow = FieldTable{{"n", FieldValue(shallow)}};
  EXPECT_TRUE(decode_table(encode_table(shallow)));
}

TEST(PropertiesCodec, AllPropertiesRoundTrip) {
  BasicProperties p;
  p.content_type = "text/plain";
  p.content_encoding = "utf-8";
  p.headers = every_type();
  p.delivery_mode = 2;
  p.priority = 7;
  p.correlation_id = "c";
  p.reply_to = "r";
  p.expiration = "1000";
  p.message_id = "order:1";
  p.timestamp = 1700000000;
  p.type = "t";
  p.user_id = "guest";
  p.app_id = "app";
  p.cluster_id = "cl";
  auto decoded = decode_properties(encode_properties(p));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, p);
}

TEST(PropertiesCodec, FlagsFollowTheContentHeaderLayout) {
  BasicProperties p;
  p.delivery_mode = 2;
  std::string bytes = encode_properties(p);
  ASSERT_EQ(bytes.size(), 3u);
  EXPECT_EQ(uint8_t(bytes[0]), 0x10);  // bit 12
  EXPECT_EQ(uint8_t(bytes[1]), 0x00);
  EXPECT_EQ(uint8_t(bytes[2]), 2);
  EXPECT_EQ(encode_properties(BasicProperties{}), std::string(2, '\0'));
}

TEST(PropertiesCodec, RefusesContinuationBitAndTrailingBytes) {
  EXPECT_FALSE(decode_properties(std::string("\x00\x01", 2)));
  EXPECT_FALSE(decode_properties(std::string("\x00\x00\x05", 3)));
  EXPECT_FALSE(decode_properties(std::string("\x80\x00", 2)));  // content-type missing
}

}  // namespace
}  // namespace warren::wire
