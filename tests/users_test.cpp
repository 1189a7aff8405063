// Users through the in-process API: stored with the broker's data, hashed, validated. What
// they may do over the network is tested against RabbitMQ in tests/interop/test_access.py.
#include "core/users.h"

#include <gtest/gtest.h>

#include "broker_util.h"

namespace warren::testing {
namespace {

TEST(PasswordHash, RabbitMQsFormatRoundTrips) {
  std::string hash = core::hash_password("s3cret");
  EXPECT_EQ(core::Users::decode_hash(hash).size(), 36u);
  EXPECT_TRUE(core::password_matches("s3cret", hash));
  EXPECT_FALSE(core::password_matches("s3cret ", hash));
  EXPECT_NE(core::hash_password("s3cret"), hash);  // salted
  // A hash RabbitMQ 3.10 exported for guest/guest.
  EXPECT_TRUE(core::password_matches("guest", "tI9X+DFg5oAOhKywNCy1niKMYy+7SRwQ5G4w56pnn5i1iW3R"));
}

TEST(Permissions, PatternsMatchAnywhereAndEmptyMeansNothing) {
  core::Users users;
  users.put({"u", "", {}, {{"/", {"^cfg-", "w", ""}}}, false});
  EXPECT_TRUE(users.may("u", "/", core::Access::configure, "cfg-1"));
  EXPECT_FALSE(users.may("u", "/", core::Access::configure, "x-cfg-1"));
  EXPECT_TRUE(users.may("u", "/", core::Access::write, "a-w-b"));  // found anywhere, as re:run
  EXPECT_FALSE(users.may("u", "/", core::Access::read, "anything"));
  EXPECT_FALSE(users.may("u", "other", core::Access::write, "w"));
  EXPECT_FALSE(users.may_use_vhost("u", "other"));
  EXPECT_FALSE(users.may("nobody", "/", core::Access::write, "w"));
}

class InProcessUsers : public DurableBrokerTest {};

TEST_F(InProcessUsers, StoredHashedAndKeptAcrossReopening) {
  {
    auto broker = open();
    broker->put_user({.name = "app",
                      .password = "pw",
                      .tags = {"management"},
                      .permissions = {{"/", {"^app-", "^app-", "^app-"}}}});
    Status bad = error_of([&] {
      broker->put_user({.name = "bad", .permissions = {{"/", {"(", ".*", ".*"}}}});
    });
    EXPECT_EQ(bad.code(), ReplyCode::precondition_failed);
    EXPECT_EQ(
        error_of([&] { broker->put_user({.name = "h", .password_hash = "not-a-hash"}); }).code(),
        ReplyCode::precondition_failed);
  }
  auto broker = open();
  auto users = broker->users();
  auto it = std::find_if(users.begin(), users.end(), [](auto& u) { return u.name == "app"; });
  ASSERT_NE(it, users.end());
  EXPECT_TRUE(it->password.empty());
  EXPECT_TRUE(core::password_matches("pw", it->password_hash));
  EXPECT_EQ(it->tags, std::vector<std::string>{"management"});
  EXPECT_EQ(it->permissions.at("/").configure, "^app-");
  EXPECT_TRUE(std::any_of(users.begin(), users.end(), [](auto& u) { return u.name == "guest"; }));
  EXPECT_TRUE(broker->delete_user("app"));
  EXPECT_FALSE(broker->delete_user("app"));
}

}  // namespace
}  // namespace warren::testing
