// Reading the store: short read transactions, renewed from a cached one when it is free.
#include <fmt/format.h>

#include "storage/store.h"

namespace warren::storage {
namespace {

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

thread_local int open_here = 0;

}  // namespace

int ReadView::views_open_here() { return open_here; }

ReadView::ReadView(Store& store) : store_(store), resize_guard_(store.resize_mutex_) {
  ++open_here;
  if (!store_.env_) {  // closed after a failed recovery in place
    status_ = store_.broken_;
    return;
  }
  bool expected = false;
  if (store_.cached_read_txn_ && store_.cached_read_busy_.compare_exchange_strong(expected, true)) {
    int rc = mdb_txn_renew(store_.cached_read_txn_);
    if (rc == MDB_SUCCESS) {
      txn_ = store_.cached_read_txn_;
      cached_ = true;
      return;
    }
    store_.cached_read_busy_ = false;
  }
  int rc = mdb_txn_begin(store_.env_, nullptr, MDB_RDONLY, &txn_);
  if (rc != MDB_SUCCESS) {
    txn_ = nullptr;
    status_ = mdb_status(rc, "begin read transaction");
  }
}

ReadView::~ReadView() {
  --open_here;
  if (!txn_) return;
  if (cached_) {
    mdb_txn_reset(txn_);
    store_.cached_read_busy_ = false;
  } else {
    mdb_txn_abort(txn_);
  }
}

std::optional<std::string_view> ReadView::get(Db db, std::string_view key) {
  if (!txn_) return std::nullopt;
  MDB_val k = val(key), v;
  if (mdb_get(txn_, store_.dbi(db), &k, &v) != MDB_SUCCESS) return std::nullopt;
  return view(v);
}

std::optional<ReadView::Entry> ReadView::seek(Db db, std::string_view from, std::string_view to) {
  if (!txn_) return std::nullopt;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return std::nullopt;
  MDB_val k = val(from), v;
  std::optional<Entry> out;
  if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == MDB_SUCCESS && view(k) < to)
    out = Entry{view(k), view(v)};
  mdb_cursor_close(cur);
  return out;
}

std::optional<ReadView::Entry> ReadView::last(Db db, std::string_view from, std::string_view to) {
  if (!txn_) return std::nullopt;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return std::nullopt;
  MDB_val k = val(to), v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  rc = rc == MDB_SUCCESS ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
                         : mdb_cursor_get(cur, &k, &v, MDB_LAST);
  std::optional<Entry> out;
  if (rc == MDB_SUCCESS && view(k) >= from && view(k) < to) out = Entry{view(k), view(v)};
  mdb_cursor_close(cur);
  return out;
}

void ReadView::scan(Db db, std::string_view from, std::string_view to,
                    const std::function<bool(std::string_view, std::string_view)>& fn) {
  if (!txn_) return;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return;
  MDB_val k = val(from), v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS && view(k) < to;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    if (!fn(view(k), view(v))) break;
  mdb_cursor_close(cur);
}

void ReadView::for_each(Db db, const std::function<void(std::string_view, std::string_view)>& fn) {
  if (!txn_) return;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return;
  MDB_val k, v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    fn(view(k), view(v));
  mdb_cursor_close(cur);
}

}  // namespace warren::storage
