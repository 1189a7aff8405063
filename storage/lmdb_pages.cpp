#include "storage/lmdb_pages.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "storage/lmdb_meta.h"

namespace warren::storage {
namespace {

// LMDB 0.9's page: page number (8), pad (2), flags (2), then either the free space's lower
// and upper offsets (2 + 2) or an overflow run's page count (4); then the node offsets.
constexpr size_t kPageHeader = 16;
constexpr uint16_t kBranchPage = 0x01, kLeafPage = 0x02, kOverflowPage = 0x04;
// Dirty (0x10), loose and keep are in-memory flags LMDB clears before it writes a page: on
// disk they are damage (a page LMDB believes dirty would be written in place, in its map).
// A node: data size low and high halves (a branch's child page number, with the flags
// field as its top), flags, key size, then the key and the data.
constexpr size_t kNodeHeader = 8;
constexpr uint16_t kBigData = 0x01, kSubData = 0x02;
// MDB_db: pad (4), flags (2), depth (2), branch, leaf and overflow page counts, entries,
// root; the meta holds the free list's and the main database's.
constexpr size_t kDbRecordSize = 48;
constexpr size_t kFreeDbOffset = 24, kMainDbOffset = 72;
constexpr uint16_t kIntegerKey = 0x08, kUnsupportedDbFlags = 0x02 | 0x04 | 0x10 | 0x20 | 0x40;
constexpr uint64_t kNoRoot = ~uint64_t(0);
constexpr int kMaxDepth = 24;

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct DbRecord {
  uint16_t flags = 0, depth = 0;
  uint64_t branch_pages = 0, leaf_pages = 0, overflow_pages = 0, entries = 0, root = kNoRoot;
};

DbRecord read_db_record(const char* p) {
  return {load<uint16_t>(p + 4), load<uint16_t>(p + 6), load<uint64_t>(p + 8), load<uint64_t>(p + 16),
          load<uint64_t>(p + 24),  load<uint64_t>(p + 32), load<uint64_t>(p + 40)};
}

using Bound = std::optional<std::string_view>;

class Walker {
 public:
  Walker(const char* map, uint64_t last_page, uint32_t page_size, const KeyCheck& key_ok, const RecordVisitor& visit,
         PageWalk& out)
      : map_(map),
        last_page_(last_page),
        page_size_(page_size),
        key_ok_(key_ok),
        visit_(visit),
        out_(out),
        seen_(last_page + 1) {
    seen_[0] = seen_[1] = true;  // the meta pages
  }

  void walk(const char* meta) {
    walk_tree("free list", read_db_record(meta + kFreeDbOffset), Kind::free_list);
    walk_tree("main", read_db_record(meta + kMainDbOffset), Kind::main);
    for (auto& [name, record] : named_) walk_tree(name, record, Kind::named);
    mark_free_pages();
  }

 private:
  enum class Kind { free_list, main, named };
  struct Tree {
    std::string name;
    Kind kind = Kind::named;
    bool integer_keys = false;
    bool damaged = false;
    uint64_t branch_pages = 0, leaf_pages = 0, overflow_pages = 0, entries = 0;
    uint16_t depth = 0;
  };

  void walk_tree(const std::string& name, const DbRecord& db, Kind kind) {
    // LMDB keys its free list by transaction id whatever the flags on disk say.
    Tree tree;
    tree.name = name;
    tree.kind = kind;
    tree.integer_keys = kind == Kind::free_list || (db.flags & kIntegerKey) != 0;
    tree.depth = db.depth;
    if (db.flags & kUnsupportedDbFlags) return damage(tree, fmt::format("has flags {:#x} this build never sets", db.flags));
    if (db.root == kNoRoot) {
      if (db.entries != 0 || db.depth != 0) damage(tree, "is empty but counts entries");
      return;
    }
    if (db.depth == 0 || db.depth > kMaxDepth) return damage(tree, fmt::format("records an impossible depth {}", db.depth));
    walk_page(tree, db.root, 1, std::nullopt, std::nullopt);
    if (tree.damaged) return;
    if (tree.branch_pages != db.branch_pages || tree.leaf_pages != db.leaf_pages ||
        tree.overflow_pages != db.overflow_pages || tree.entries != db.entries)
      damage(tree, fmt::format("counts {} branch, {} leaf, {} overflow pages and {} entries; its pages hold {}, {}, "
                               "{} and {}",
                               db.branch_pages, db.leaf_pages, db.overflow_pages, db.entries, tree.branch_pages,
                               tree.leaf_pages, tree.overflow_pages, tree.entries));
  }

  void walk_page(Tree& tree, uint64_t pgno, int level, const Bound& lo, const Bound& hi) {
    const char* page = claim(tree, pgno, "page");
    if (!page) return;
    uint16_t flags = load<uint16_t>(page + 10);
    bool leaf = flags == kLeafPage;
    if (flags != kBranchPage && !leaf) return damage(tree, pgno, fmt::format("has page flags {:#x}", flags));
    if (leaf != (level == tree.depth)) return damage(tree, pgno, fmt::format("is at depth {} of {}", level, tree.depth));
    uint16_t lower = load<uint16_t>(page + 12), upper = load<uint16_t>(page + 14);
    if (lower < kPageHeader || lower > upper || upper > page_size_ || (lower - kPageHeader) % 2 != 0)
      return damage(tree, pgno, fmt::format("has free space bounds {}..{}", lower, upper));
    size_t keys = (lower - kPageHeader) / 2;
    if (keys == 0) return damage(tree, pgno, "holds no keys");
    ++(leaf ? tree.leaf_pages : tree.branch_pages);
    // The walk is bound by memory latency: ask for every node at once, not one by one.
    for (size_t i = 0; i < keys; ++i) __builtin_prefetch(page + load<uint16_t>(page + kPageHeader + 2 * i));
    // Each level keeps its scratch: a page's nodes stay in use while its children are read.
    Scratch& scratch = scratch_[size_t(level)];
    scratch.keys.resize(keys);
    scratch.nodes.resize(keys);
    std::vector<std::string_view>& node_keys = scratch.keys;
    std::vector<const char*>& nodes = scratch.nodes;
    for (size_t i = 0; i < keys; ++i) {
      uint16_t offset = load<uint16_t>(page + kPageHeader + 2 * i);
      if (offset < upper || offset + kNodeHeader > page_size_)
        return damage(tree, pgno, fmt::format("node {} lies outside the page", i));
      nodes[i] = page + offset;
      uint16_t key_size = load<uint16_t>(nodes[i] + 6);
      if (offset + kNodeHeader + key_size > page_size_) return damage(tree, pgno, fmt::format("key {} runs past the page", i));
      node_keys[i] = {nodes[i] + kNodeHeader, key_size};
    }
    if (!nodes_tile(nodes, scratch.spans, page, leaf, upper))
      return damage(tree, pgno, "has nodes that overlap or leave gaps (a size was changed)");
    // Keys rise strictly within the page, and its first and last lie in the range its parent
    // gives it; so every key of the tree is in order. A branch's first key is empty: its
    // child holds everything below the second.
    size_t first = leaf ? 0 : 1;
    for (size_t i = first + 1; i < keys; ++i)
      if (compare(tree, node_keys[i], node_keys[i - 1]) <= 0)
        return damage(tree, pgno, fmt::format("key {} is out of order", i));
    if (first < keys && ((lo && compare(tree, node_keys[first], *lo) < 0) ||
                         (hi && compare(tree, node_keys[keys - 1], *hi) >= 0)))
      return damage(tree, pgno, "holds keys outside the range its parent gives it");
    if (leaf) {
      for (size_t i = 0; i < keys; ++i) read_leaf_node(tree, pgno, nodes[i], node_keys[i]);
      return;
    }
    auto child = [&](size_t i) {
      const char* node = nodes[i];
      return uint64_t(load<uint16_t>(node)) | uint64_t(load<uint16_t>(node + 2)) << 16 |
             uint64_t(load<uint16_t>(node + 4)) << 32;
    };
    // Children are scattered over the file: fetch the next ones while this one is read.
    constexpr size_t kAhead = 8;
    for (size_t i = 0; i < std::min(kAhead, keys); ++i) prefetch_page(child(i));
    for (size_t i = 0; i < keys; ++i) {
      if (i + kAhead < keys) prefetch_page(child(i + kAhead));
      walk_page(tree, child(i), level + 1, i == 0 ? lo : Bound(node_keys[i]), i + 1 < keys ? Bound(node_keys[i + 1]) : hi);
    }
  }

  // LMDB packs a page's nodes from its free space's upper bound to its end, each taking an
  // even number of bytes. A node whose size field was hit overlaps its neighbour or leaves a
  // gap; deleting it would make LMDB move bytes past the page.
  bool nodes_tile(const std::vector<const char*>& nodes, std::vector<std::pair<size_t, size_t>>& spans,
                  const char* page, bool leaf, uint16_t upper) const {
    spans.clear();
    for (const char* node : nodes) {
      uint64_t size = kNodeHeader + load<uint16_t>(node + 6);
      if (leaf)
        size += load<uint16_t>(node + 4) == kBigData
                    ? sizeof(uint64_t)
                    : (uint64_t(load<uint16_t>(node)) | uint64_t(load<uint16_t>(node + 2)) << 16);
      size_t from = size_t(node - page);
      spans.emplace_back(from, from + ((size + 1) & ~uint64_t{1}));
    }
    std::sort(spans.begin(), spans.end());
    size_t at = upper;
    for (auto [from, to] : spans) {
      if (from != at) return false;
      at = to;
    }
    return at == page_size_;
  }

  void read_leaf_node(Tree& tree, uint64_t pgno, const char* node, std::string_view key) {
    ++tree.entries;
    uint16_t node_flags = load<uint16_t>(node + 4);
    uint64_t size = uint64_t(load<uint16_t>(node)) | uint64_t(load<uint16_t>(node + 2)) << 16;
    const char* data = node + kNodeHeader + key.size();
    size_t inline_room = size_t(map_ + (pgno + 1) * page_size_ - data);
    std::string_view value;
    if (node_flags == kBigData) {
      if (inline_room < sizeof(uint64_t)) return damage(tree, pgno, "a value's page number runs past the page");
      value = read_overflow(tree, load<uint64_t>(data), size);
      if (tree.damaged) return;
    } else if (node_flags == 0 || (node_flags == kSubData && tree.kind == Kind::main)) {
      if (size > inline_room) return damage(tree, pgno, "a value runs past the page");
      value = {data, size};
    } else {
      return damage(tree, pgno, fmt::format("a node has flags {:#x}", node_flags));
    }
    switch (tree.kind) {
      case Kind::free_list: free_lists_.push_back(value); break;
      case Kind::main:
        if (node_flags != kSubData || value.size() != kDbRecordSize)
          return damage(tree, pgno, "holds a database record of the wrong shape");
        named_.emplace_back(std::string(key), read_db_record(value.data()));
        break;
      case Kind::named:
        if (key_ok_ && !key_ok_(tree.name, key)) return damage(tree, pgno, "holds a key of a shape it never stores");
        if (visit_) visit_(tree.name, key, value);
        break;
    }
  }

  std::string_view read_overflow(Tree& tree, uint64_t pgno, uint64_t size) {
    const char* page = claim(tree, pgno, "overflow page");
    if (!page) return {};
    uint32_t pages = load<uint32_t>(page + 12);
    uint16_t flags = load<uint16_t>(page + 10);
    if (flags != kOverflowPage || pages == 0 || pgno + pages - 1 > last_page_ ||
        uint64_t(pages) * page_size_ - kPageHeader < size) {
      damage(tree, pgno, fmt::format("is not an overflow run that holds {} bytes", size));
      return {};
    }
    for (uint64_t p = pgno + 1; p < pgno + pages; ++p)
      if (!claim_quietly(p)) {
        damage(tree, pgno, fmt::format("overflow run overlaps page {}, which is also used elsewhere", p));
        return {};
      }
    tree.overflow_pages += pages;
    return {page + kPageHeader, size};
  }

  void prefetch_page(uint64_t pgno) const {
    if (pgno > last_page_) return;
    const char* page = map_ + pgno * page_size_;
    __builtin_prefetch(page);
    __builtin_prefetch(page + 64);
  }

  // The page at pgno, if it is in range, not yet used and names itself.
  const char* claim(Tree& tree, uint64_t pgno, const char* what) {
    if (pgno < 2 || pgno > last_page_) {
      damage(tree, fmt::format("points to {} {}, outside the {} pages in use", what, pgno, last_page_ + 1));
      return nullptr;
    }
    if (!claim_quietly(pgno)) {
      damage(tree, pgno, "is reached twice");
      return nullptr;
    }
    const char* page = map_ + pgno * page_size_;
    ++out_.pages_read;
    if (load<uint64_t>(page) != pgno) {
      damage(tree, pgno, fmt::format("names itself page {} (zeroed or overwritten)", load<uint64_t>(page)));
      return nullptr;
    }
    return page;
  }

  bool claim_quietly(uint64_t pgno) {
    if (pgno > last_page_ || seen_[pgno]) return false;
    seen_[pgno] = true;
    return true;
  }

  // The free list's records are page number lists: a count, then the pages.
  void mark_free_pages() {
    uint64_t twice = 0, outside = 0;
    for (std::string_view list : free_lists_) {
      uint64_t count = list.size() >= 8 ? load<uint64_t>(list.data()) : 0;
      if (list.size() < 8 || (list.size() - 8) / 8 < count) {
        out_.damage.push_back("free list: a record of the wrong shape");
        continue;
      }
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t pgno = load<uint64_t>(list.data() + 8 * (i + 1));
        if (pgno < 2 || pgno > last_page_) ++outside;
        else if (!claim_quietly(pgno)) ++twice;
      }
    }
    if (twice)
      out_.damage.push_back(fmt::format("free list: {} pages are listed free but also in use or listed twice", twice));
    if (outside) out_.damage.push_back(fmt::format("free list: {} pages listed are outside the file", outside));
    uint64_t unaccounted = 0;
    for (uint64_t p = 2; p <= last_page_; ++p) unaccounted += !seen_[p];
    if (unaccounted) out_.notes.push_back(fmt::format("{} pages are neither in use nor free", unaccounted));
  }

  int compare(const Tree& tree, std::string_view a, std::string_view b) const {
    if (tree.integer_keys && a.size() == b.size() && (a.size() == 8 || a.size() == 4)) {
      uint64_t x = a.size() == 8 ? load<uint64_t>(a.data()) : load<uint32_t>(a.data());
      uint64_t y = b.size() == 8 ? load<uint64_t>(b.data()) : load<uint32_t>(b.data());
      return x < y ? -1 : x > y;
    }
    return a.compare(b);
  }

  void damage(Tree& tree, uint64_t pgno, const std::string& what) {
    damage(tree, fmt::format("page {} {}", pgno, what));
  }
  void damage(Tree& tree, const std::string& what) {
    tree.damaged = true;
    out_.damage.push_back(fmt::format("database '{}': {}", tree.name, what));
  }

  const char* map_;
  uint64_t last_page_;
  uint32_t page_size_;
  const KeyCheck& key_ok_;
  const RecordVisitor& visit_;
  PageWalk& out_;
  std::vector<bool> seen_;
  struct Scratch {
    std::vector<std::string_view> keys;
    std::vector<const char*> nodes;
    std::vector<std::pair<size_t, size_t>> spans;
  };
  std::vector<Scratch> scratch_ = std::vector<Scratch>(kMaxDepth + 1);
  std::vector<std::string_view> free_lists_;
  std::vector<std::pair<std::string, DbRecord>> named_;
};

}  // namespace

Result<PageWalk> walk_lmdb_file(const FileIo& io, const std::string& path, const KeyCheck& key_ok,
                                const RecordVisitor& visit) {
  auto file = inspect_lmdb_file(io, path);
  if (!file.ok()) return file.status();
  uint64_t bytes = (file->last_page + 1) * file->page_size;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileIo::status(errno, fmt::format("open {}", path));
  void* map = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  int map_error = errno;
  close(fd);
  if (map == MAP_FAILED) return FileIo::status(map_error, fmt::format("map {}", path));
  PageWalk out;
  Walker(static_cast<const char*>(map), file->last_page, file->page_size, key_ok, visit, out).walk(file->meta.data());
  munmap(map, bytes);
  return out;
}

Status audit_lmdb_file(const FileIo& io, const std::string& path, const KeyCheck& key_ok) {
  auto walk = walk_lmdb_file(io, path, key_ok);
  if (!walk.ok()) return walk.status();
  if (walk->damage.empty()) return {};
  std::string found = walk->damage.front();
  if (walk->damage.size() > 1) found += fmt::format(" (and {} more)", walk->damage.size() - 1);
  return Status::storage(StorageFault::corruption,
                         fmt::format("{} is damaged: {}; it was not opened, as LMDB cannot read it safely. "
                                     "warrend --check lists the damage; warrend --salvage-from copies what "
                                     "is readable into a new store",
                                     path, found));
}

}  // namespace warren::storage
