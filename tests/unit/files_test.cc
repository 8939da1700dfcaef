#include "core/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace prevue {
namespace {

TEST(KeptSecret, MadeOnceOwnerOnlyAndTheSameOnEveryRead) {
  const std::filesystem::path dir = ::testing::TempDir() + "/prevue-kept-secret-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  int made = 0;
  auto make = [&] {
    ++made;
    return std::string(64, static_cast<char>('a' + made));
  };
  auto first = kept_secret(dir / "state" / "key", make);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, std::string(64, 'b'));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "state" / "key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(kept_secret(dir / "state" / "key", make).value(), *first);  // read, not made again
  EXPECT_EQ(made, 1);
  // A truncated file is no secret: a new one replaces it.
  ASSERT_TRUE(write_file_atomic(dir / "state" / "key", "short").ok());
  EXPECT_EQ(kept_secret(dir / "state" / "key", make).value(), std::string(64, 'c'));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prevue
