// convstate_bench: the scenarios of docs/benchmark.md (S1-S6) for impl=convstate and
// impl=raw (the hand-written floor), on SQLite, PostgreSQL and MariaDB, in one process.
//
//   convstate_bench [--backend sqlite|postgres|mariadb|all] [--scenarios S1,S2,S3,S4,S5]
//                   [--pg-url URL] [--mariadb-url URL] [--dir DIR] [--scale full|smoke] [--runs N]
//                   [--csv FILE]
//
// Output: one line per result in docs/benchmark.md's format, one `ratio=convstate/raw` line per
// scenario, comments start with '#'. Every run verifies what it stored and exits 1 if wrong.

#include <malloc.h>
#include <unistd.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "bench.hpp"

namespace fs = std::filesystem;
using namespace bench;

namespace {

// --- options and scale --------------------------------------------------------------------

struct Scale {
    const char* name;
    int s1_users, s1_turns;
    int s2_turns, s2_edge; // early = turns 1..edge, late = the last edge turns
    int s3_clients, s3_turns;
    int s4_clients, s4_turns;
    long long s5_big_convs, s5_small_convs, s5_per_conv;
    int s5_loads, s5_warmup;
    int window; // the last-N window
};
constexpr Scale full_scale{"full", 100, 20, 1000, 50, 8, 250, 8, 250, 10000, 10, 100, 2000, 200, 50};
constexpr Scale smoke_scale{"smoke", 5, 4, 40, 5, 8, 10, 8, 10, 200, 10, 100, 100, 20, 50};

struct Options {
    std::vector<Backend> backends{Backend::sqlite, Backend::postgres}; // + mariadb when it has a URL
    bool backends_given = false;
    std::vector<std::string> scenarios{"S1", "S2", "S3", "S4", "S5", "S6"};
    std::string pg_url;
    std::string mariadb_url;
    std::string dir;
    std::string csv;
    Scale scale = full_scale;
    int runs = 0; // 0: 3 at full scale, 1 at smoke scale
    bool run_cs = true, run_raw = true; // --impl (for profiling one side; no ratio lines then)
    bool default_malloc = false;        // --default-malloc: leave glibc's settings alone
    std::vector<int> citus_workers;     // --citus-workers P1,P2: --pg-url is a Citus coordinator
};

constexpr const char* kUsage =
    "usage: convstate_bench [--backend sqlite|postgres|mariadb|all] [--scenarios S1,S2,S3,S4,S5,S6]\n"
    "                       [--pg-url postgresql://...] [--mariadb-url mysql://...] [--dir DIR]\n"
    "                       [--scale full|smoke] [--runs N] [--csv FILE] [--impl convstate|raw|both]\n"
    "                       [--default-malloc] [--citus-workers PORT,PORT]\n"
    "  The benchmark workload of docs/benchmark.md for convstate and a hand-written floor.\n"
    "  PostgreSQL needs --pg-url (or CONVSTATE_BENCH_PG_URL), MariaDB --mariadb-url (or\n"
    "  CONVSTATE_BENCH_MARIADB_URL), e.g. mysql://user:password@127.0.0.1:3306/db; the bench creates\n"
    "  and drops its own databases convstate_bench_* there. bench/run.sh starts both servers for you.\n"
    "  Without --backend: sqlite and postgres, and mariadb when a MariaDB URL is given; all: the three.\n"
    "  S3 runs on PostgreSQL and MariaDB, S6 on PostgreSQL only.\n"
    "  --citus-workers: --pg-url is a Citus coordinator with workers on 127.0.0.1 at these ports;\n"
    "  each bench database gets Citus on every node (bench/citus.sh starts such a cluster).\n";

// A bad command line: what is wrong, then the usage, on stderr; exit status 2.
[[noreturn]] void usage(const std::string& error) {
    std::fprintf(stderr, "convstate_bench: %s\n%s", error.c_str(), kUsage);
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    if (const char* env = std::getenv("CONVSTATE_BENCH_PG_URL")) o.pg_url = env;
    if (const char* env = std::getenv("CONVSTATE_BENCH_MARIADB_URL")) o.mariadb_url = env;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        if (a == "--backend") {
            const std::string v = value();
            if (v == "sqlite") o.backends = {Backend::sqlite};
            else if (v == "postgres" || v == "postgresql") o.backends = {Backend::postgres};
            else if (v == "mariadb" || v == "mysql") o.backends = {Backend::mariadb};
            else if (v == "all") o.backends = {Backend::sqlite, Backend::postgres, Backend::mariadb};
            else usage("unknown backend " + v);
            o.backends_given = true;
        } else if (a == "--scenarios") {
            o.scenarios.clear();
            std::stringstream ss(value());
            for (std::string s; std::getline(ss, s, ',');) {
                if (s != "S1" && s != "S2" && s != "S3" && s != "S4" && s != "S5" && s != "S6") usage("unknown scenario " + s);
                o.scenarios.push_back(s);
            }
        } else if (a == "--pg-url") {
            o.pg_url = value();
        } else if (a == "--mariadb-url") {
            o.mariadb_url = value();
        } else if (a == "--dir") {
            o.dir = value();
        } else if (a == "--csv") {
            o.csv = value();
        } else if (a == "--scale") {
            const std::string v = value();
            if (v == "full") o.scale = full_scale;
            else if (v == "smoke") o.scale = smoke_scale;
            else usage("unknown scale " + v);
        } else if (a == "--runs") {
            o.runs = std::atoi(value().c_str());
            if (o.runs < 1) usage("--runs must be at least 1");
        } else if (a == "--impl") {
            const std::string v = value();
            if (v != "convstate" && v != "raw" && v != "both") usage("unknown impl " + v);
            o.run_cs = v != "raw";
            o.run_raw = v != "convstate";
        } else if (a == "--default-malloc") {
            o.default_malloc = true;
        } else if (a == "--citus-workers") {
            const std::string v = value();
            for (std::size_t start = 0; start <= v.size();) {
                const std::size_t comma = std::min(v.find(',', start), v.size());
                const int port = std::atoi(v.substr(start, comma - start).c_str());
                if (port < 1 || port > 65535) usage("--citus-workers takes ports, e.g. 5433,5434");
                o.citus_workers.push_back(port);
                start = comma + 1;
            }
        } else if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else {
            usage("unknown argument " + a);
        }
    }
    if (o.runs == 0) o.runs = o.scale.name == std::string("smoke") ? 1 : 3;
    if (!o.backends_given && !o.mariadb_url.empty()) o.backends.push_back(Backend::mariadb);
    for (Backend b : o.backends) {
        if (b == Backend::postgres && o.pg_url.empty())
            usage("PostgreSQL needs --pg-url (or CONVSTATE_BENCH_PG_URL); bench/run.sh starts a server for you");
        if (b == Backend::mariadb && o.mariadb_url.empty())
            usage("MariaDB needs --mariadb-url (or CONVSTATE_BENCH_MARIADB_URL); bench/run.sh starts a server for you");
    }
    return o;
}

bool wants(const Options& o, const std::string& s) {
    return std::find(o.scenarios.begin(), o.scenarios.end(), s) != o.scenarios.end();
}

void progress(const std::string& what) {
    std::fprintf(stderr, "[convstate_bench] %s\n", what.c_str());
    std::fflush(stderr);
}

void out(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

// --- results ------------------------------------------------------------------------------

struct Result {
    long long turns = 0;
    double tps = 0, p50 = 0, p99 = 0;
    double early = -1, late = -1, rt = -1, rss = -1;
    double allocs = -1; // C++ heap allocations per turn (S1, S6)
    std::vector<double> per_turn; // S2: ms per turn
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double pct(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void summarize(Result& r, std::vector<double> lat, double wall_ms) {
    r.turns = static_cast<long long>(lat.size());
    r.tps = static_cast<double>(lat.size()) / (wall_ms / 1000.0);
    std::sort(lat.begin(), lat.end());
    r.p50 = pct(lat, 0.50);
    r.p99 = pct(lat, 0.99);
}

double median(std::vector<double> v) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Result median_of(const std::vector<Result>& runs) {
    auto field = [&](double Result::*f) {
        std::vector<double> v;
        for (const Result& r : runs) v.push_back(r.*f);
        return median(v);
    };
    Result m;
    m.turns = runs.front().turns;
    m.tps = field(&Result::tps);
    m.p50 = field(&Result::p50);
    m.p99 = field(&Result::p99);
    m.early = field(&Result::early);
    m.late = field(&Result::late);
    m.rt = field(&Result::rt);
    m.rss = field(&Result::rss);
    m.allocs = field(&Result::allocs);
    for (std::size_t i = 0; i < runs.front().per_turn.size(); ++i) {
        std::vector<double> v;
        for (const Result& r : runs) v.push_back(r.per_turn.at(i));
        m.per_turn.push_back(median(v));
    }
    return m;
}

std::string result_line(const char* impl, Backend b, const std::string& scenario, const Result& r) {
    std::string s = fmt::format("impl={} backend={} scenario={} turns={} turns_per_s={:.1f} p50_ms={:.3f} p99_ms={:.3f}",
                                impl, backend_name(b), scenario, r.turns, r.tps, r.p50, r.p99);
    if (r.early >= 0) s += fmt::format(" early_ms={:.3f} late_ms={:.3f}", r.early, r.late);
    if (b != Backend::sqlite && r.rt >= 0) s += fmt::format(" round_trips_per_turn={:.2f}", r.rt);
    if (r.rss >= 0) s += fmt::format(" peak_rss_mb={:.1f}", r.rss);
    if (r.allocs >= 0) s += fmt::format(" allocs_per_turn={:.1f}", r.allocs);
    return s;
}

/** convstate/raw, measured within each run; the median over runs. */
std::string ratio_line(Backend b, const std::string& scenario, const std::vector<Result>& cs,
                       const std::vector<Result>& raw) {
    auto ratio = [&](double Result::*f) {
        std::vector<double> v;
        for (std::size_t i = 0; i < cs.size(); ++i) v.push_back(cs[i].*f / raw[i].*f);
        return median(v);
    };
    std::string s = fmt::format("ratio=convstate/raw backend={} scenario={} turns_per_s={:.3f} p50_ms={:.2f} p99_ms={:.2f}",
                                backend_name(b), scenario, ratio(&Result::tps), ratio(&Result::p50), ratio(&Result::p99));
    if (cs.front().early >= 0)
        s += fmt::format(" early_ms={:.2f} late_ms={:.2f}", ratio(&Result::early), ratio(&Result::late));
    if (b != Backend::sqlite && cs.front().rt >= 0 && raw.front().rt > 0)
        s += fmt::format(" round_trips_per_turn={:.2f}", ratio(&Result::rt));
    return s;
}

// --- verification ---------------------------------------------------------------------------

/** fdatasync of one 8 kB write on the filesystem of dir (what a commit costs): p50 in ms. */
double fdatasync_p50_ms(const std::string& dir) {
    const std::string path = (fs::path(dir) / "fsync-probe.tmp").string();
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return -1;
    std::vector<double> ms;
    const std::string block(8192, 'x');
    for (int i = 0; i < 100; ++i) {
        const auto t0 = Clock::now();
        std::fwrite(block.data(), 1, block.size(), f);
        std::fflush(f);
        fdatasync(fileno(f));
        ms.push_back(ms_since(t0));
    }
    std::fclose(f);
    fs::remove(path);
    return median(ms);
}

std::string s1_text(int user, int turn) { return user_text(fmt::format("S1 user {} turn {}", user, turn)); }
std::string s2_text(int turn) { return user_text(fmt::format("S2 turn {}", turn)); }
std::string s3_text(int client, int turn) { return user_text(fmt::format("S3 client {} turn {}", client, turn)); }
std::string s4_text(int client, int turn) { return user_text(fmt::format("S4 client {} turn {}", client, turn)); }
std::string user_name(const char* scenario, int i) { return fmt::format("{}-user-{:04d}", scenario, i); }

/** A conversation of `turns` sequential turns: 2*turns messages, seq dense 1..N, user/assistant
 *  alternating, the user messages in turn order. */
void verify_sequential(Impl& impl, const std::string& user, const std::string& conv, int turns,
                       const std::function<std::string(int)>& text_of, const std::string& what) {
    const std::vector<Row> rows = impl.load_all(user, conv);
    const std::string who = fmt::format("{} {} conversation {}", impl.name(), what, conv);
    if (rows.size() != static_cast<std::size_t>(2 * turns))
        fail(fmt::format("{}: {} messages stored, expected {}", who, rows.size(), 2 * turns));
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        if (r.seq != static_cast<long long>(i) + 1)
            fail(fmt::format("{}: message {} has seq {} (not dense 1..N)", who, i, r.seq));
        const bool user_turn = i % 2 == 0;
        if (r.role != (user_turn ? "user" : "assistant"))
            fail(fmt::format("{}: seq {} is a {} message, expected {}", who, r.seq, r.role,
                             user_turn ? "user" : "assistant"));
        if (r.content != (user_turn ? text_of(static_cast<int>(i / 2)) : reply_text()))
            fail(fmt::format("{}: seq {} holds the wrong content (order broken)", who, r.seq));
    }
}

// --- the backend's stores ------------------------------------------------------------------

constexpr const char* bench_db_cs = "convstate_bench_cs";
constexpr const char* bench_db_raw = "convstate_bench_raw";
constexpr const char* bench_db_s5big = "convstate_bench_s5big";
constexpr const char* bench_db_s5small = "convstate_bench_s5small";

// A Citus database: the same database with the extension on every worker, and on the
// coordinator the extension and the cluster's nodes. convstate's migrate() then distributes its
// tables by user_id; the floor's tables stay local tables of the coordinator.
void citus_database(const Options& o, const char* db) {
    const auto [host, port] = pg_url_host_port(o.pg_url);
    for (const int w : o.citus_workers) {
        const std::string worker = pg_url_with_host(o.pg_url, "127.0.0.1", w);
        PgAdmin(worker).try_exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", db));
        PgAdmin(worker).exec(fmt::format("CREATE DATABASE {}", db));
        PgAdmin(pg_url_with_db(worker, db)).exec("CREATE EXTENSION citus");
    }
    PgAdmin coordinator(pg_url_with_db(o.pg_url, db));
    coordinator.exec("CREATE EXTENSION citus");
    coordinator.exec(fmt::format("SELECT citus_set_coordinator_host('{}', {})", host, port));
    for (const int w : o.citus_workers) coordinator.exec(fmt::format("SELECT citus_add_node('127.0.0.1', {})", w));
    if (std::string(db) == bench_db_cs) out(fmt::format("# citus: {} on a coordinator with {} workers", db, o.citus_workers.size()));
}

class Env {
public:
    Env(Backend b, const Options& o) : backend(b), opt(o) {
        if (b == Backend::postgres) {
            admin = std::make_unique<PgAdmin>(o.pg_url);
            for (const char* db : {bench_db_cs, bench_db_raw, bench_db_s5big, bench_db_s5small}) {
                admin->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", db));
                admin->exec(fmt::format("CREATE DATABASE {}", db));
                if (!o.citus_workers.empty()) citus_database(o, db);
            }
            const auto settings = admin->query(
                "SELECT current_setting('server_version'), current_setting('fsync'),"
                " current_setting('synchronous_commit'), current_setting('shared_preload_libraries')");
            out(fmt::format("# postgres: server {} fsync={} synchronous_commit={} shared_preload_libraries='{}'",
                            settings[0][0], settings[0][1], settings[0][2], settings[0][3]));
            std::string err;
            pgss = admin->try_exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", &err) &&
                   admin->try_exec("SELECT 1 FROM pg_stat_statements LIMIT 1", &err);
            // The brief asks for the extension in the bench database too (harmless there).
            if (pgss) PgAdmin(pg_url_with_db(o.pg_url, bench_db_cs)).exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
            if (!pgss) {
                while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
                out("# cross-check unavailable: pg_stat_statements is not loaded (" + err + ")");
            }
        } else if (b == Backend::mariadb) {
            my_admin = std::make_unique<MyAdmin>(o.mariadb_url);
            for (const char* db : {bench_db_cs, bench_db_raw, bench_db_s5big, bench_db_s5small}) {
                my_admin->exec(fmt::format("DROP DATABASE IF EXISTS {}", db));
                my_admin->exec(fmt::format("CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", db));
            }
            const auto v = my_admin->query(
                "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@innodb_doublewrite, @@innodb_flush_method,"
                " @@innodb_buffer_pool_size DIV 1048576, @@innodb_log_file_size DIV 1048576, @@log_bin, @@sync_binlog");
            out(fmt::format("# mariadb: server {} innodb_flush_log_at_trx_commit={} innodb_doublewrite={} "
                            "innodb_flush_method={} innodb_buffer_pool_size={}M innodb_log_file_size={}M log_bin={} "
                            "sync_binlog={}; sessions READ COMMITTED, strict sql_mode, utf8mb4",
                            v[0][0], v[0][1], v[0][2], v[0][3], v[0][4], v[0][5], v[0][6], v[0][7]));
        } else {
            out(fmt::format("# sqlite: files in {} (WAL, synchronous=NORMAL)", o.dir));
        }
    }
    ~Env() {
        for (const std::string& f : files)
            for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(f + suffix);
        if (admin)
            for (const char* db : {bench_db_cs, bench_db_raw, bench_db_s5big, bench_db_s5small})
                admin->try_exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", db));
        if (my_admin)
            for (const char* db : {bench_db_cs, bench_db_raw, bench_db_s5big, bench_db_s5small})
                my_admin->try_exec(fmt::format("DROP DATABASE IF EXISTS {}", db));
    }

    std::string sqlite_path(const std::string& name) {
        const std::string p = (fs::path(opt.dir) / (name + ".db")).string();
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(p + suffix);
        if (std::find(files.begin(), files.end(), p) == files.end()) files.push_back(p);
        return p;
    }
    std::string pg_url(const char* db) const { return pg_url_with_db(opt.pg_url, db); }
    std::string my_url(const char* db) const { return mysql_url_with_db(opt.mariadb_url, db); }

    /** A fresh, empty store for one scenario run. */
    std::unique_ptr<Impl> fresh(bool cs, const std::string& tag, bool classic = false) {
        if (backend == Backend::sqlite) {
            const std::string p = sqlite_path(fmt::format("{}_{}", cs ? "convstate" : "raw", tag));
            return cs ? make_convstate("sqlite3://" + p) : make_raw_sqlite(p);
        }
        if (backend == Backend::mariadb) {
            const std::string url = my_url(cs ? bench_db_cs : bench_db_raw);
            std::unique_ptr<Impl> impl = cs ? make_convstate(url) : make_raw_mysql(url);
            MyAdmin db(url);
            for (const char* t : {"conversations", "messages"})
                db.exec(fmt::format("TRUNCATE TABLE {}_{}", cs ? "convstate" : "raw", t));
            return impl;
        }
        const std::string url = pg_url(cs ? bench_db_cs : bench_db_raw);
        // S6: the implementation reaches the server through the delaying proxy.
        const std::string via = via_port ? pg_url_with_host(url, "127.0.0.1", via_port) : url;
        std::unique_ptr<Impl> impl = cs ? make_convstate(via) : classic ? make_classic_pg(via) : make_raw_pg(via);
        PgAdmin db(url);
        db.exec(cs ? "TRUNCATE convstate_conversations, convstate_messages" : "TRUNCATE raw_conversations, raw_messages");
        admin->try_exec("CHECKPOINT"); // start every run from the same WAL state
        return impl;
    }

    Backend backend;
    const Options& opt;
    int via_port = 0; // nonzero: implementations connect through the S6 proxy on this port
    std::unique_ptr<PgAdmin> admin;
    std::unique_ptr<MyAdmin> my_admin;
    bool pgss = false;
    std::vector<std::string> files;
};

// --- scenarios ---------------------------------------------------------------------------

/** pg_stat_statements over the first S1 run of convstate on PostgreSQL. */
struct CrossCheck {
    Env& env;
    std::uint64_t library = 0;
    void begin() { env.admin->exec("SELECT pg_stat_statements_reset()"); }
    void end(std::uint64_t library_statements, long long turns) {
        library = library_statements;
        const std::string where = fmt::format("dbid = (SELECT oid FROM pg_database WHERE datname = '{}')", bench_db_cs);
        const auto total = env.admin->query("SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements WHERE " + where);
        const auto per = env.admin->query(
            "SELECT calls, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements WHERE " + where +
            " ORDER BY calls DESC, query");
        const std::string server = total[0][0];
        out(fmt::format("# cross-check backend=postgres scenario=S1 run=1 turns={} convstate_stats_statements={} "
                        "pg_stat_statements_calls={} ({}) per_turn={:.2f}/{:.2f}",
                        turns, library, server, std::to_string(library) == server ? "equal" : "DIFFERENT",
                        static_cast<double>(library) / static_cast<double>(turns),
                        std::strtod(server.c_str(), nullptr) / static_cast<double>(turns)));
        for (const auto& row : per) {
            std::string q = row[1];
            if (q.size() > 150) q = q.substr(0, 147) + "...";
            out(fmt::format("#   calls={:>6} {}", row[0], q));
        }
    }
};

Result s1(Impl& impl, const Scale& sc, CrossCheck* cc) {
    auto client = impl.client(Window::last(sc.window));
    std::vector<std::string> convs(static_cast<std::size_t>(sc.s1_users));
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(sc.s1_users * sc.s1_turns));
    if (cc) cc->begin();
    const std::uint64_t rt0 = impl.round_trips(), a0 = heap_allocations();
    const auto t0 = Clock::now();
    for (int t = 0; t < sc.s1_turns; ++t)
        for (int u = 0; u < sc.s1_users; ++u) {
            const std::string text = s1_text(u, t);
            const auto ts = Clock::now();
            TurnOut o = client->turn(user_name("S1", u), convs[u], text);
            lat.push_back(ms_since(ts));
            if (o.user_seq != 2 * t + 1 || o.reply_seq != 2 * t + 2)
                fail(fmt::format("{} S1: turn {} of user {} got seqs {}/{}", impl.name(), t, u, o.user_seq, o.reply_seq));
            if (t == 0) convs[u] = o.conversation_id;
        }
    const double wall = ms_since(t0);
    const std::uint64_t rt = impl.round_trips() - rt0, allocs = heap_allocations() - a0;
    if (cc) cc->end(rt, static_cast<long long>(lat.size()));
    Result r;
    summarize(r, lat, wall);
    r.rt = static_cast<double>(rt) / static_cast<double>(lat.size());
    // (the latency vector was reserved up front, so its own growth is not counted)
    r.allocs = static_cast<double>(allocs) / static_cast<double>(lat.size());
    for (int u = 0; u < sc.s1_users; ++u)
        verify_sequential(impl, user_name("S1", u), convs[u], sc.s1_turns, [u](int t) { return s1_text(u, t); }, "S1");
    return r;
}

// pg_stat_wal.wal_sync, once it has stopped moving: backends and the WAL writer report their
// counts at most once a second (and a backend at the latest when it exits).
long long settled_wal_sync(PgAdmin& admin) {
    long long last = -1;
    for (int i = 0; i < 20; ++i) {
        const long long now = std::stoll(admin.query("SELECT wal_sync FROM pg_stat_wal")[0][0]);
        if (now == last) return now;
        last = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    }
    return last;
}

// WAL flushes per S1 turn (PostgreSQL): a fresh store, one S1 run, its connections closed.
double wal_syncs_per_turn(std::unique_ptr<Impl> impl, PgAdmin& admin, const Scale& sc) {
    const long long before = settled_wal_sync(admin);
    s1(*impl, sc, nullptr);
    impl.reset(); // the backends exit, reporting their counts
    return static_cast<double>(settled_wal_sync(admin) - before) / static_cast<double>(sc.s1_users * sc.s1_turns);
}

Result s2(Impl& impl, const Scale& sc, Window w) {
    auto client = impl.client(w);
    const std::string user = user_name("S2", 0);
    std::string conv;
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(sc.s2_turns));
    const std::uint64_t rt0 = impl.round_trips();
    const auto t0 = Clock::now();
    for (int t = 0; t < sc.s2_turns; ++t) {
        const std::string text = s2_text(t);
        const auto ts = Clock::now();
        TurnOut o = client->turn(user, conv, text);
        lat.push_back(ms_since(ts));
        if (o.user_seq != 2 * t + 1 || o.reply_seq != 2 * t + 2)
            fail(fmt::format("{} S2: turn {} got seqs {}/{}", impl.name(), t, o.user_seq, o.reply_seq));
        if (t == 0) conv = o.conversation_id;
    }
    const double wall = ms_since(t0);
    Result r;
    r.per_turn = lat;
    r.rt = static_cast<double>(impl.round_trips() - rt0) / static_cast<double>(lat.size());
    const auto edge = static_cast<std::size_t>(sc.s2_edge);
    double early = 0, late = 0;
    for (std::size_t i = 0; i < edge; ++i) {
        early += lat[i];
        late += lat[lat.size() - edge + i];
    }
    r.early = early / static_cast<double>(edge);
    r.late = late / static_cast<double>(edge);
    summarize(r, lat, wall);
    verify_sequential(impl, user, conv, sc.s2_turns, [](int t) { return s2_text(t); }, "S2");
    return r;
}

// Starts the client threads waiting on `go` (once all are `ready`), joins them, and summarises
// their per-turn latencies, wall time and round trips.
Result start_and_measure(Impl& impl, std::latch& ready, std::latch& go, std::vector<std::thread>& threads,
                         const std::vector<std::vector<double>>& lat) {
    ready.arrive_and_wait();
    const std::uint64_t rt0 = impl.round_trips();
    const auto t0 = Clock::now();
    go.count_down();
    for (auto& t : threads) t.join();
    const double wall = ms_since(t0);
    std::vector<double> all;
    for (const auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    Result r;
    r.rt = static_cast<double>(impl.round_trips() - rt0) / static_cast<double>(all.size());
    summarize(r, all, wall);
    return r;
}

Result s3(Impl& impl, const Scale& sc) {
    const int n = sc.s3_clients;
    std::vector<std::vector<double>> lat(static_cast<std::size_t>(n));
    std::vector<std::string> convs(static_cast<std::size_t>(n));
    std::latch ready(n + 1), go(1);
    std::vector<std::thread> threads;
    for (int c = 0; c < n; ++c)
        threads.emplace_back([&, c] {
            auto client = impl.client(Window::last(sc.window)); // connects (raw) before the clock starts
            auto& mine = lat[static_cast<std::size_t>(c)];
            mine.reserve(static_cast<std::size_t>(sc.s3_turns));
            ready.count_down();
            go.wait();
            std::string conv;
            for (int t = 0; t < sc.s3_turns; ++t) {
                const std::string text = s3_text(c, t);
                const auto ts = Clock::now();
                TurnOut o = client->turn(user_name("S3", c), conv, text);
                mine.push_back(ms_since(ts));
                if (o.user_seq != 2 * t + 1 || o.reply_seq != 2 * t + 2)
                    fail(fmt::format("{} S3: client {} turn {} got seqs {}/{}", impl.name(), c, t, o.user_seq, o.reply_seq));
                if (t == 0) conv = o.conversation_id;
            }
            convs[static_cast<std::size_t>(c)] = conv;
        });
    Result r = start_and_measure(impl, ready, go, threads, lat);
    for (int c = 0; c < n; ++c)
        verify_sequential(impl, user_name("S3", c), convs[static_cast<std::size_t>(c)], sc.s3_turns,
                          [c](int t) { return s3_text(c, t); }, "S3");
    return r;
}

Result s4(Impl& impl, const Scale& sc) {
    const int n = sc.s4_clients;
    const std::string user = user_name("S4", 0);
    const std::string conv = impl.create_conversation(user);
    std::vector<std::vector<double>> lat(static_cast<std::size_t>(n));
    std::vector<std::vector<TurnOut>> outs(static_cast<std::size_t>(n));
    std::latch ready(n + 1), go(1);
    std::vector<std::thread> threads;
    for (int c = 0; c < n; ++c)
        threads.emplace_back([&, c] {
            auto client = impl.client(Window::last(sc.window));
            auto& mine = lat[static_cast<std::size_t>(c)];
            auto& seqs = outs[static_cast<std::size_t>(c)];
            mine.reserve(static_cast<std::size_t>(sc.s4_turns));
            ready.count_down();
            go.wait();
            for (int t = 0; t < sc.s4_turns; ++t) {
                const std::string text = s4_text(c, t);
                const auto ts = Clock::now();
                seqs.push_back(client->turn(user, conv, text));
                mine.push_back(ms_since(ts));
            }
        });
    Result r = start_and_measure(impl, ready, go, threads, lat);

    // Verify: seq dense 1..N with N = 2 x turns; every user message followed later by a reply
    // (and by its own turn's reply); each client's messages in its turn order.
    const std::vector<Row> rows = impl.load_all(user, conv);
    const std::string who = fmt::format("{} S4 conversation {}", impl.name(), conv);
    const std::size_t total = static_cast<std::size_t>(2 * n * sc.s4_turns);
    if (rows.size() != total) fail(fmt::format("{}: {} messages stored, expected {}", who, rows.size(), total));
    long long open = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (rows[i].seq != static_cast<long long>(i) + 1)
            fail(fmt::format("{}: message {} has seq {} (not dense 1..N)", who, i, rows[i].seq));
        if (rows[i].role == "user") ++open;
        else if (rows[i].role == "assistant" && rows[i].content == reply_text()) --open;
        else fail(fmt::format("{}: unexpected message at seq {}", who, rows[i].seq));
        if (open < 0) fail(fmt::format("{}: more replies than user messages up to seq {}", who, rows[i].seq));
    }
    if (open != 0) fail(fmt::format("{}: {} user messages without a reply after them", who, open));
    for (int c = 0; c < n; ++c) {
        long long prev = 0;
        for (int t = 0; t < sc.s4_turns; ++t) {
            const TurnOut& o = outs[static_cast<std::size_t>(c)][static_cast<std::size_t>(t)];
            if (o.user_seq <= prev || o.reply_seq <= o.user_seq || o.reply_seq > static_cast<long long>(total))
                fail(fmt::format("{}: client {} turn {} got seqs {}/{}", who, c, t, o.user_seq, o.reply_seq));
            if (rows[static_cast<std::size_t>(o.user_seq - 1)].content != s4_text(c, t))
                fail(fmt::format("{}: seq {} does not hold client {} turn {}'s message", who, o.user_seq, c, t));
            if (rows[static_cast<std::size_t>(o.reply_seq - 1)].role != "assistant")
                fail(fmt::format("{}: seq {} (client {} turn {}'s reply) is not a reply", who, o.reply_seq, c, t));
            prev = o.reply_seq;
        }
    }
    return r;
}

// --- S5 ----------------------------------------------------------------------------------

struct Store {
    std::unique_ptr<Impl> impl;
    long long convs = 0, per_conv = 0;
};

void reset_peak_rss() {
    malloc_trim(0); // what earlier scenarios freed is not this measurement's peak
    std::ofstream f("/proc/self/clear_refs");
    f << "5";
}
double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

Store build_store(Env& env, bool cs, bool big) {
    const Scale& sc = env.opt.scale;
    Store st;
    st.convs = big ? sc.s5_big_convs : sc.s5_small_convs;
    st.per_conv = sc.s5_per_conv;
    const char* impl = cs ? "convstate" : "raw";
    const auto t0 = Clock::now();
    if (env.backend == Backend::sqlite) {
        const std::string p = env.sqlite_path(fmt::format("{}_s5{}", impl, big ? "big" : "small"));
        const std::string url = "sqlite3://" + p;
        { auto schema = cs ? make_convstate(url) : make_raw_sqlite(p); } // creates the schema, lets go of the file
        build_store_sqlite(p, impl, st.convs, st.per_conv);
        st.impl = cs ? make_convstate(url) : make_raw_sqlite(p);
    } else if (env.backend == Backend::mariadb) {
        const std::string url = env.my_url(big ? bench_db_s5big : bench_db_s5small);
        st.impl = cs ? make_convstate(url) : make_raw_mysql(url);
        build_store_mysql(url, impl, st.convs, st.per_conv);
    } else {
        const std::string url = env.pg_url(big ? bench_db_s5big : bench_db_s5small);
        st.impl = cs ? make_convstate(url) : make_raw_pg(url);
        build_store_pg(url, impl, st.convs, st.per_conv);
        env.admin->try_exec("CHECKPOINT");
    }
    out(fmt::format("# S5 store built by bulk SQL: backend={} impl={} messages={} conversations={} in {:.1f} s",
                    backend_name(env.backend), impl, st.convs * st.per_conv, st.convs, ms_since(t0) / 1000.0));
    return st;
}

Result s5(Store& st, const Scale& sc, int run) {
    reset_peak_rss();
    auto client = st.impl->client(Window::last(sc.window));
    const long long users = std::max<long long>(1, st.convs / 10);
    std::mt19937_64 rng(1234 + static_cast<unsigned>(run));
    std::uniform_int_distribution<long long> pick(0, st.convs - 1);
    auto load = [&] {
        const long long k = pick(rng);
        client->load_last(store_user(k, users), store_conv_id(k), sc.window, st.per_conv);
    };
    for (int i = 0; i < sc.s5_warmup; ++i) load();
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(sc.s5_loads));
    const auto t0 = Clock::now();
    for (int i = 0; i < sc.s5_loads; ++i) {
        const auto ts = Clock::now();
        load();
        lat.push_back(ms_since(ts));
    }
    const double wall = ms_since(t0);
    Result r;
    summarize(r, lat, wall);
    r.rss = peak_rss_mb();
    return r;
}

// --- driver ------------------------------------------------------------------------------

struct CsvSeries {
    std::string impl, backend, variant;
    std::vector<double> ms;
};

using RunFn = std::function<Result(Impl&, int run, bool cs)>;

/** Runs a scenario --runs times, convstate and raw one after the other (the order alternates
 *  between runs), each on a fresh store; prints the median lines and the ratio line. */
std::pair<Result, Result> block(Env& env, const std::string& label, const RunFn& fn) {
    std::vector<Result> cs_runs, raw_runs;
    for (int run = 0; run < env.opt.runs; ++run)
        for (bool cs : {run % 2 == 0, run % 2 != 0}) {
            if (!(cs ? env.opt.run_cs : env.opt.run_raw)) continue;
            progress(fmt::format("{} {} run {}/{}: {}", backend_name(env.backend), label, run + 1, env.opt.runs,
                                 cs ? "convstate" : "raw"));
            std::unique_ptr<Impl> impl = env.fresh(cs, label);
            (cs ? cs_runs : raw_runs).push_back(fn(*impl, run, cs));
        }
    const Result cs = cs_runs.empty() ? Result{} : median_of(cs_runs);
    const Result raw = raw_runs.empty() ? Result{} : median_of(raw_runs);
    if (!cs_runs.empty()) out(result_line("convstate", env.backend, label, cs));
    if (!raw_runs.empty()) out(result_line("raw", env.backend, label, raw));
    if (!cs_runs.empty() && !raw_runs.empty()) out(ratio_line(env.backend, label, cs_runs, raw_runs));
    return {cs, raw};
}

void run_backend(Backend b, const Options& opt, std::vector<CsvSeries>& csv) {
    Env env(b, opt);
    const Scale& sc = opt.scale;
    if (wants(opt, "S1")) {
        std::optional<CrossCheck> cc;
        if (b == Backend::postgres && env.pgss) cc.emplace(CrossCheck{env});
        block(env, "S1", [&](Impl& impl, int run, bool cs) {
            return s1(impl, sc, cs && run == 0 && cc ? &*cc : nullptr);
        });
        if (b == Backend::sqlite) { // the cost of durability across power loss (PRAGMA synchronous=FULL)
            std::vector<Result> full;
            for (int run = 0; run < opt.runs; ++run) {
                const std::string path = env.sqlite_path(fmt::format("convstate_S1_full_{}", run));
                full.push_back(s1(*make_convstate("sqlite3://" + path + "?synchronous=full"), sc, nullptr));
            }
            out(fmt::format("# sqlite synchronous=FULL scenario=S1 impl=convstate turns_per_s={:.1f} p50_ms={:.3f} "
                            "p99_ms={:.3f} (the lines above: NORMAL)",
                            median_of(full).tps, median_of(full).p50, median_of(full).p99));
        }
        if (b == Backend::postgres) {
            double per[2] = {};
            for (const bool cs : {true, false}) per[cs] = wal_syncs_per_turn(env.fresh(cs, "S1-wal"), *env.admin, sc);
            for (const bool cs : {true, false})
                out(fmt::format("# wal_sync backend=postgres scenario=S1 impl={} wal_sync_per_turn={:.2f}",
                                cs ? "convstate" : "raw", per[cs]));
        }
    }
    if (wants(opt, "S2")) {
        for (const auto& [variant, w] : {std::pair{"full", Window::everything()}, std::pair{"last50", Window::last(sc.window)}}) {
            auto [cs, raw] = block(env, fmt::format("S2-{}", variant), [&](Impl& impl, int, bool) { return s2(impl, sc, w); });
            if (!cs.per_turn.empty()) csv.push_back({"convstate", backend_name(b), variant, cs.per_turn});
            if (!raw.per_turn.empty()) csv.push_back({"raw", backend_name(b), variant, raw.per_turn});
        }
    }
    if (wants(opt, "S3")) {
        if (b != Backend::sqlite) block(env, "S3", [&](Impl& impl, int, bool) { return s3(impl, sc); });
        else out("# S3 (8 concurrent clients, one pool) runs on PostgreSQL and MariaDB only");
    }
    if (wants(opt, "S4")) block(env, "S4", [&](Impl& impl, int, bool) { return s4(impl, sc); });
    if (wants(opt, "S6")) {
        if (b == Backend::postgres) {
            // S1's workload with the database one network hop away: 0.25 ms each way.
            const auto [host, port] = pg_url_host_port(opt.pg_url);
            DelayProxy proxy(host, port, std::chrono::microseconds(250));
            env.via_port = proxy.port();
            block(env, "S6", [&](Impl& impl, int, bool) { return s1(impl, sc, nullptr); });
            std::vector<Result> classic; // for reference: the classic flow's 6 statements
            for (int run = 0; run < opt.runs; ++run) {
                progress(fmt::format("postgres S6 run {}/{}: classic", run + 1, opt.runs));
                classic.push_back(s1(*env.fresh(false, "S6", true), sc, nullptr));
            }
            out(result_line("classic", b, "S6", median_of(classic)));
            env.via_port = 0;
        } else {
            out("# S6 (the database across a network) runs on PostgreSQL only");
        }
    }
    if (wants(opt, "S5")) {
        std::vector<bool> impls;
        if (opt.run_cs) impls.push_back(true);
        if (opt.run_raw) impls.push_back(false);
        std::map<std::pair<bool, bool>, std::vector<Result>> runs; // (cs, big)
        std::map<std::pair<bool, bool>, Store> stores;
        for (bool big : {true, false})
            for (bool cs : impls) {
                progress(fmt::format("{} S5: building the {} store for {}", backend_name(b), big ? "big" : "small",
                                     cs ? "convstate" : "raw"));
                stores.emplace(std::pair{cs, big}, build_store(env, cs, big));
            }
        for (int run = 0; run < opt.runs; ++run)
            for (bool big : {true, false})
                for (bool cs : {run % 2 == 0, run % 2 != 0}) {
                    if (!(cs ? opt.run_cs : opt.run_raw)) continue;
                    progress(fmt::format("{} S5-{} run {}/{}: {}", backend_name(b), big ? "big" : "small", run + 1,
                                         opt.runs, cs ? "convstate" : "raw"));
                    runs[{cs, big}].push_back(s5(stores.at({cs, big}), sc, run));
                }
        for (bool big : {true, false}) {
            const std::string label = big ? "S5-big" : "S5-small";
            for (bool cs : impls) out(result_line(cs ? "convstate" : "raw", b, label, median_of(runs[{cs, big}])));
            if (impls.size() == 2) out(ratio_line(b, label, runs[{true, big}], runs[{false, big}]));
        }
        for (bool cs : impls) {
            std::vector<double> p99, p50;
            for (int run = 0; run < opt.runs; ++run) {
                p99.push_back(runs[{cs, true}][run].p99 / runs[{cs, false}][run].p99);
                p50.push_back(runs[{cs, true}][run].p50 / runs[{cs, false}][run].p50);
            }
            out(fmt::format("ratio=big/small impl={} backend={} scenario=S5 p99_ms={:.2f} p50_ms={:.2f}",
                            cs ? "convstate" : "raw", backend_name(b), median(p99), median(p50)));
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    Options opt = parse(argc, argv);
    // On this kind of VM a page fault or a TLB shootdown is expensive, and glibc's defaults hand
    // a turn's memory back to the kernel (trim / munmap) only to fault it in again on the next
    // turn: that cost, not the SQL, dominated history-heavy turns of BOTH implementations (and
    // kept the raw floor 5x above the reference figures). Keep freed memory mapped, for both.
    const bool malloc_tuned = !opt.default_malloc && mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 &&
                              mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1 && mallopt(M_TOP_PAD, 64 << 20) == 1;
    bool temp_dir = false;
    if (std::find(opt.backends.begin(), opt.backends.end(), Backend::sqlite) != opt.backends.end()) {
        if (opt.dir.empty()) {
            char tmpl[] = "/tmp/convstate-bench.XXXXXX";
            if (!mkdtemp(tmpl)) fail("cannot create a temporary directory");
            opt.dir = tmpl;
            temp_dir = true;
        }
        fs::create_directories(opt.dir);
    }
    const Scale& sc = opt.scale;
    out(fmt::format("# convstate_bench scale={} runs={}: result lines are medians over the runs; ratio lines are the "
                    "median of the ratios measured within each run (convstate and raw run one after the other, "
                    "alternating which goes first)",
                    sc.name, opt.runs));
    out(fmt::format("# turn: user message 120 B, stub agent reply 300 B (instant), no idempotency key; window: last {} "
                    "messages (S1, S3, S4; S1 conversations stay under it), S2 with full history and last {}",
                    sc.window, sc.window));
    out(fmt::format("# S1 {} users x {} turns, round-robin | S2 {} turns, early = turns 1-{}, late = the last {} | "
                    "S3 {} clients x {} turns | S4 {} clients x {} turns on one conversation | S5 last {} of a random "
                    "conversation, {} loads after {} warm-up, stores of {} and {} messages",
                    sc.s1_users, sc.s1_turns, sc.s2_turns, sc.s2_edge, sc.s2_edge, sc.s3_clients, sc.s3_turns,
                    sc.s4_clients, sc.s4_turns, sc.window, sc.s5_loads, sc.s5_warmup,
                    sc.s5_big_convs * sc.s5_per_conv, sc.s5_small_convs * sc.s5_per_conv));
    out(malloc_tuned ? "# malloc: M_MMAP_THRESHOLD=32M M_TRIM_THRESHOLD=256M M_TOP_PAD=64M for both implementations "
                       "(freed memory stays mapped: no page-fault storm per turn)"
                     : opt.default_malloc ? "# malloc: glibc defaults (--default-malloc)"
                                          : "# malloc: tuning FAILED, glibc defaults in use");
    out(fmt::format("# disk: fdatasync of an 8 kB write, p50 {:.3f} ms (each PostgreSQL or MariaDB commit waits for one)",
                    fdatasync_p50_ms(opt.dir.empty() ? fs::temp_directory_path().string() : opt.dir)));
    std::vector<CsvSeries> csv;
    for (Backend b : opt.backends) run_backend(b, opt, csv);
    if (!opt.csv.empty()) {
        std::ofstream f(opt.csv);
        f << "impl,backend,variant,turn,ms\n";
        for (const CsvSeries& s : csv)
            for (std::size_t i = 0; i < s.ms.size(); ++i)
                f << s.impl << ',' << s.backend << ',' << s.variant << ',' << (i + 1) << ',' << fmt::format("{:.4f}", s.ms[i]) << '\n';
        if (!f) fail("cannot write " + opt.csv);
        out("# per-turn S2 latencies (median over runs) written to " + opt.csv);
    }
    if (temp_dir) fs::remove_all(opt.dir);
    out("# all results verified");
    return 0;
}
