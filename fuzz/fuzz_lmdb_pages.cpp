// The page walker on arbitrary data files: it runs before LMDB maps a store, so whatever a
// damaged disk holds must give a report or an error, never a fault or a read out of bounds.
// The seed is a small store of every database (fuzz/make_lmdb_seed.sh).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/keys.h"
#include "storage/lmdb_pages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace warren::storage;
  // The walker reads files: an in-memory one, named through /proc.
  int fd = memfd_create("data.mdb", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) == ssize_t(size)) {
    // Every byte handed out is read: one outside the file would fault here.
    volatile uint8_t sum = 0;
    auto walk = walk_lmdb_file(FileIo(), "/proc/self/fd/" + std::to_string(fd), key_has_shape,
                               [&](std::string_view, std::string_view key, std::string_view value) {
                                 for (char c : key) sum = uint8_t(sum + uint8_t(c));
                                 for (char c : value) sum = uint8_t(sum + uint8_t(c));
                               });
    (void)walk;
  }
  close(fd);
  return 0;
}
