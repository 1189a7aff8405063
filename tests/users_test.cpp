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

TEST(TopicPermissions, OnlyExchangesWithAnEntryAreCheckedAndVariablesExpand) {
  core::Users users;
  core::User u{.name = "dev", .every_vhost = true};
  u.topic_permissions["/"]["amq.topic"] = {"^{username}\\.", ""};
  u.topic_permissions["/"]["logs"] = {"^{vhost}$", "a"};
  users.put(u);
  using core::Access;
  EXPECT_TRUE(users.may_use_topic("dev", "/", "amq.topic", Access::write, "dev.x"));
  EXPECT_FALSE(users.may_use_topic("dev", "/", "amq.topic", Access::write, "other.dev.x"));
  EXPECT_TRUE(users.may_use_topic("dev", "/", "amq.topic", Access::read, ""));  // "" is "^$"
  EXPECT_FALSE(users.may_use_topic("dev", "/", "amq.topic", Access::read, "dev.x"));
  EXPECT_TRUE(users.may_use_topic("dev", "/", "logs", Access::write, "/"));
  EXPECT_FALSE(users.may_use_topic("dev", "/", "logs", Access::write, "//"));
  EXPECT_TRUE(users.may_use_topic("dev", "/", "logs", Access::read, "x.a"));  // anywhere
  EXPECT_FALSE(users.may_use_topic("dev", "/", "logs", Access::read, "x.b"));
  EXPECT_TRUE(users.may_use_topic("dev", "/", "unlisted", Access::write, "anything"));
  EXPECT_TRUE(users.may_use_topic("dev", "other", "amq.topic", Access::write, "anything"));
  EXPECT_FALSE(users.may_use_topic("nobody", "/", "amq.topic", Access::write, "dev.x"));
  EXPECT_FALSE(core::Users::topic_pattern_error("^{username}\\.{vhost}$"));
  EXPECT_TRUE(core::Users::topic_pattern_error("(^{username}"));

  // Replaced without them, then with them again, then removed: checked exactly while set.
  core::User plain{.name = "dev", .every_vhost = true};
  users.put(plain);
  EXPECT_TRUE(users.may_use_topic("dev", "/", "amq.topic", Access::write, "other.dev.x"));
  users.put(u);
  EXPECT_FALSE(users.may_use_topic("dev", "/", "amq.topic", Access::write, "other.dev.x"));
  users.put({.name = "second", .topic_permissions = {{"/", {{"amq.topic", {"^never$", ""}}}}}});
  EXPECT_TRUE(users.remove("dev"));
  EXPECT_FALSE(users.may_use_topic("second", "/", "amq.topic", Access::write, "x"));
}

TEST(TopicPermissions, KeptInTheStoredForm) {
  core::User u{.name = "dev", .password_hash = core::hash_password("pw")};
  u.topic_permissions["/"]["amq.topic"] = {"w", "r"};
  u.topic_permissions["v2"]["x"] = {"", ".*"};
  auto decoded = core::Users::decode(core::Users::encode(u));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, u);
}

class InProcessUsers : public DurableBrokerTest {};

TEST_F(InProcessUsers, TopicPermissionsThroughThePublicApi) {
  {
    auto broker = open();
    broker->put_user({.name = "t",
                      .password = "pw",
                      .topic_permissions = {{"/", {{"amq.topic", {"^t\\.", ""}}}}}});
    EXPECT_EQ(error_of([&] {
                broker->put_user({.name = "bad", .topic_permissions = {{"/", {{"x", {"(", ""}}}}}});
              }).code(),
              ReplyCode::precondition_failed);
  }
  auto users = open()->users();
  auto it = std::find_if(users.begin(), users.end(), [](auto& u) { return u.name == "t"; });
  ASSERT_NE(it, users.end());
  EXPECT_EQ(it->topic_permissions.at("/").at("amq.topic").write, "^t\\.");
  EXPECT_EQ(it->topic_permissions.at("/").at("amq.topic").read, "");
  EXPECT_FALSE(std::any_of(users.begin(), users.end(), [](auto& u) { return u.name == "bad"; }));
}

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
