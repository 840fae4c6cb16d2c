#include "stmt.hpp"

#include <cctype>
#include <charconv>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <soci/mysql/soci-mysql.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "db.hpp"

namespace convstate::detail {

Stmt::Stmt(DatabaseImpl& db, soci::session& session, const std::string& sql, bool cacheable)
    : db_(db), session_(session), sql_(sql), c_(cacheable ? db.cached(session, sql) : nullptr),
      rows_(db.policy().can().rows) {
    if (!c_) {
        own_ = std::make_unique<CachedStatement>(session);
        c_ = own_.get();
    }
    targets_.reserve(c_->targets);
}

Stmt::~Stmt() {
    if (own_) return;
    c_->busy = false;
    if (failed_) {
        db_.evict(session_, sql_, c_);
        return;
    }
    // A SQLite statement left un-reset keeps its read snapshot open: reset it now, not at its
    // next use.
    if (native_) sqlite_api::sqlite3_reset(native_);
}

CachedStatement::Slot CachedStatement::new_slot(bool is_text) {
    Slot slot;
    indicators.push_back(soci::i_ok);
    slot.ind = &indicators.back();
    if (is_text) {
        texts.emplace_back();
        slot.text = &texts.back();
    } else {
        numbers.push_back(0);
        slot.number = &numbers.back();
    }
    return slot;
}

// SOCI gets the values of server statements (it sends them); SQLite statements Stmt binds
// itself. Into() targets SOCI gets only where Stmt cannot read the rows itself (RowSource::soci).
Stmt& Stmt::bind_use(bool is_text, const std::string* text, const long long* number) {
    if (!c_->prepared) {
        const CachedStatement::Slot slot = c_->new_slot(is_text);
        if (rows_ != RowSource::sqlite_statement) {
            if (slot.text) c_->st.exchange(soci::use(*slot.text, *slot.ind));
            else c_->st.exchange(soci::use(*slot.number, *slot.ind));
        }
        c_->uses.push_back(slot);
    }
    const CachedStatement::Slot& slot = c_->uses.at(next_use_++);
    *slot.ind = text || number ? soci::i_ok : soci::i_null;
    if (slot.text) *slot.text = text ? *text : std::string{};
    else *slot.number = number ? *number : 0;
    return *this;
}

Stmt& Stmt::bind_into(std::string* text, long long* number, soci::indicator* ind) {
    targets_.push_back({text, number, ind});
    return *this;
}

namespace {

// The named placeholders (:name) of a statement, as SOCI finds them: outside quoted strings, and
// not PostgreSQL's :: casts.
std::size_t placeholders(const std::string& sql) {
    std::size_t n = 0;
    bool quoted = false;
    for (std::size_t i = 0; i < sql.size(); ++i) {
        const char c = sql[i];
        if (c == '\'') quoted = !quoted;
        if (quoted || c != ':') continue;
        if (i + 1 < sql.size() && sql[i + 1] == ':') {
            ++i;
            continue;
        }
        const auto is_name = [&](std::size_t k) {
            return k < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[k])) || sql[k] == '_');
        };
        if (!is_name(i + 1)) continue;
        ++n;
        while (is_name(i + 1)) ++i;
    }
    return n;
}

} // namespace

void Stmt::prepare() {
    // The binding contract: one use() per placeholder, every time. Values are bound by position,
    // so a missing or extra one would shift every value after it.
    if (next_use_ != c_->uses.size() || (!c_->prepared && c_->uses.size() != placeholders(sql_)))
        throw std::logic_error(fmt::format("convstate: {} values bound to a statement with {} placeholders: {}",
                                           next_use_, placeholders(sql_), sql_.substr(0, 200)));
    if (!c_->prepared) {
        c_->st.alloc();
        if (rows_ == RowSource::soci) {
            for (const Target& t : targets_) {
                const CachedStatement::Slot slot = c_->new_slot(t.text != nullptr);
                if (slot.text) c_->st.exchange(soci::into(*slot.text, *slot.ind));
                else c_->st.exchange(soci::into(*slot.number, *slot.ind));
                c_->intos.push_back(slot);
            }
        }
        // Cached: prepared once per connection (PostgreSQL: PREPARE, then EXECUTE each time).
        // Not cached: PostgreSQL runs it with PQexecParams (one round trip, nothing named).
        c_->st.prepare(sql_, own_ ? soci::details::st_one_time_query : soci::details::st_repeatable_query);
        c_->st.define_and_bind();
        c_->targets = targets_.size();
        c_->prepared = true;
    }
    if (rows_ == RowSource::soci && targets_.size() > c_->intos.size())
        throw std::logic_error(fmt::format("convstate: {} targets for a statement prepared with {}: {}",
                                           targets_.size(), c_->intos.size(), sql_.substr(0, 200)));
    if (rows_ != RowSource::sqlite_statement) return;
    // (static_cast: SOCI does not export the backend's typeinfo.)
    auto* be = static_cast<soci::sqlite3_statement_backend*>(c_->st.get_backend());
    native_ = be ? be->stmt_ : nullptr;
    if (!native_) throw std::logic_error("convstate: SQLite statement not prepared: " + sql_.substr(0, 200));
    if (targets_.size() > static_cast<std::size_t>(sqlite_api::sqlite3_column_count(native_)))
        throw std::logic_error(fmt::format("convstate: {} targets for a statement returning {} columns: {}",
                                           targets_.size(), sqlite_api::sqlite3_column_count(native_),
                                           sql_.substr(0, 200)));
    sqlite_api::sqlite3_reset(native_);
    for (std::size_t i = 0; i < c_->uses.size(); ++i) {
        const CachedStatement::Slot& slot = c_->uses[i];
        const int pos = static_cast<int>(i + 1);
        int rc;
        if (*slot.ind == soci::i_null) rc = sqlite_api::sqlite3_bind_null(native_, pos);
        else if (slot.number) rc = sqlite_api::sqlite3_bind_int64(native_, pos, *slot.number);
        // SQLITE_STATIC: the slot outlives the statement's use of it (it is re-bound each time).
        else rc = sqlite_api::sqlite3_bind_text(native_, pos, slot.text->data(), static_cast<int>(slot.text->size()),
                                                SQLITE_STATIC);
        if (rc != SQLITE_OK) throw soci::sqlite3_soci_error(
            fmt::format("binding value {}: {}", pos, sqlite_api::sqlite3_errstr(rc)), rc);
    }
}

bool Stmt::sqlite_step() {
    const int rc = sqlite_api::sqlite3_step(native_);
    if (rc == SQLITE_DONE) return false;
    if (rc != SQLITE_ROW) {
        // The message names the failure (as SOCI's does); the result code classifies it.
        std::string message = sqlite_api::sqlite3_errmsg(sqlite_api::sqlite3_db_handle(native_));
        sqlite_api::sqlite3_reset(native_);
        throw soci::sqlite3_soci_error("sqlite3_step: " + message, rc);
    }
    // A null leaves its target as it was; the indicator says null.
    for (std::size_t i = 0; i < targets_.size(); ++i) {
        const Target& t = targets_[i];
        const int col = static_cast<int>(i);
        if (t.text) {
            // column_text before column_bytes: the byte count is then that of the text form.
            // No text is a null, or SQLite running out of memory converting the value.
            const auto* p = reinterpret_cast<const char*>(sqlite_api::sqlite3_column_text(native_, col));
            if (!p && sqlite_api::sqlite3_column_type(native_, col) != SQLITE_NULL)
                throw soci::sqlite3_soci_error("sqlite3_column_text: out of memory", SQLITE_NOMEM);
            if (t.ind) *t.ind = p ? soci::i_ok : soci::i_null;
            if (p) t.text->assign(p, static_cast<std::size_t>(sqlite_api::sqlite3_column_bytes(native_, col)));
        } else {
            const bool null = sqlite_api::sqlite3_column_type(native_, col) == SQLITE_NULL;
            if (t.ind) *t.ind = null ? soci::i_null : soci::i_ok;
            if (!null) *t.number = sqlite_api::sqlite3_column_int64(native_, col);
        }
    }
    return true;
}

template <class Cell>
void Stmt::read_text_row(Cell&& cell) {
    for (std::size_t i = 0; i < targets_.size(); ++i) {
        const Target& t = targets_[i];
        const int col = static_cast<int>(i);
        const std::optional<std::string_view> value = cell(col);
        if (t.ind) *t.ind = value ? soci::i_ok : soci::i_null;
        if (!value) continue; // the target keeps its value; the indicator says null
        const char* begin = value->data();
        const char* end = begin + value->size();
        if (t.text) {
            t.text->assign(begin, value->size());
        } else if (auto [stop, ec] = std::from_chars(begin, end, *t.number); ec != std::errc{} || stop != end) {
            throw std::logic_error(fmt::format("convstate: column {} holds '{}', not an integer: {}", col + 1,
                                               value->substr(0, 40), sql_.substr(0, 200)));
        }
    }
}

bool Stmt::pg_read() {
    if (pg_row_ >= pg_rows_) return false;
    read_text_row([&](int col) -> std::optional<std::string_view> {
        if (PQgetisnull(pg_result_, pg_row_, col)) return std::nullopt;
        return std::string_view(PQgetvalue(pg_result_, pg_row_, col),
                                static_cast<std::size_t>(PQgetlength(pg_result_, pg_row_, col)));
    });
    return true;
}

bool Stmt::mysql_read() {
    // The whole result is in client memory (SOCI stores it): nothing here talks to the server.
    MYSQL_ROW row = mysql_result_ ? mysql_fetch_row(mysql_result_) : nullptr;
    if (!row) return false;
    const unsigned long* lengths = mysql_fetch_lengths(mysql_result_);
    read_text_row([&](int col) -> std::optional<std::string_view> {
        if (!row[col]) return std::nullopt;
        return std::string_view(row[col], lengths[col]);
    });
    return true;
}

bool Stmt::soci_read(bool got_row) {
    if (!got_row) return false;
    // A null leaves its target as it was; the indicator says null. The buffers are swapped,
    // not copied: SOCI overwrites its side at the next row.
    for (std::size_t i = 0; i < targets_.size(); ++i) {
        const Target& t = targets_[i];
        const CachedStatement::Slot& slot = c_->intos[i];
        if (t.ind) *t.ind = *slot.ind;
        if (*slot.ind == soci::i_null) continue;
        if (t.text) t.text->swap(*slot.text);
        else *t.number = *slot.number;
    }
    return true;
}

long long Stmt::affected_rows() {
    if (native_) return sqlite_api::sqlite3_changes(sqlite_api::sqlite3_db_handle(native_));
    return c_->st.get_affected_rows();
}

bool Stmt::execute() {
    try {
        prepare();
        db_.count_statement();
        if (native_) return sqlite_step();
        if (rows_ == RowSource::soci) return soci_read(c_->st.execute(true));
        c_->st.execute(true); // SOCI sends the statement; it has no targets to fill
        if (rows_ == RowSource::mysql_result) {
            // (static_cast: SOCI does not export the backend's typeinfo.)
            auto* be = static_cast<soci::mysql_statement_backend*>(c_->st.get_backend());
            mysql_result_ = be ? be->result_ : nullptr;
            if (mysql_result_) {
                mysql_data_seek(mysql_result_, 0);
                if (targets_.size() > mysql_num_fields(mysql_result_))
                    throw std::logic_error(fmt::format("convstate: {} targets for a statement returning {} columns: {}",
                                                       targets_.size(), mysql_num_fields(mysql_result_),
                                                       sql_.substr(0, 200)));
            }
            return mysql_read();
        }
        // (static_cast: SOCI does not export the backend's typeinfo.)
        const auto* be = static_cast<soci::postgresql_statement_backend*>(c_->st.get_backend());
        pg_result_ = be ? be->result_.get_result() : nullptr;
        pg_rows_ = pg_result_ && PQresultStatus(pg_result_) == PGRES_TUPLES_OK ? PQntuples(pg_result_) : 0;
        pg_row_ = 0;
        if (pg_rows_ > 0 && targets_.size() > static_cast<std::size_t>(PQnfields(pg_result_)))
            throw std::logic_error(fmt::format("convstate: {} targets for a statement returning {} columns: {}",
                                               targets_.size(), PQnfields(pg_result_), sql_.substr(0, 200)));
        return pg_read();
    } catch (...) {
        failed_ = true;
        throw;
    }
}

bool Stmt::fetch() {
    try {
        if (native_) return sqlite_step();
        if (rows_ == RowSource::soci) return soci_read(c_->st.fetch());
        if (rows_ == RowSource::mysql_result) return mysql_read();
        ++pg_row_;
        return pg_read();
    } catch (...) {
        failed_ = true;
        throw;
    }
}

} // namespace convstate::detail
