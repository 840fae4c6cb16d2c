#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <convstate/history_window.hpp>

#include "support.hpp"

using convstate::estimate_tokens;
using convstate::HistoryWindow;
using convstate::Message;
using convstate::Role;
using convstate::TokenCounter;
using convstate::ToolCall;

namespace {

using Seqs = std::vector<std::int64_t>;

// ---------------------------------------------------------------------------------------------
// Builders. Messages are built field by field: designated initializers that skip members trip
// -Wmissing-field-initializers on gcc 12.

Message make(Role role, std::string content) {
    Message m;
    m.role = role;
    m.content = std::move(content);
    return m;
}

Message sys(std::string content = "be helpful") { return make(Role::system, std::move(content)); }
Message user(std::string content = "hi") { return make(Role::user, std::move(content)); }
Message asst(std::string content = "hello") { return make(Role::assistant, std::move(content)); }

ToolCall call(std::string id, std::string name = "lookup", std::string arguments = "{}") {
    ToolCall c;
    c.id = std::move(id);
    c.name = std::move(name);
    c.arguments = std::move(arguments);
    return c;
}

/** An assistant message carrying one tool call per id. */
Message calls(const std::vector<std::string>& ids) {
    Message m = make(Role::assistant, "");
    for (const std::string& id : ids) m.tool_calls.push_back(call(id));
    return m;
}

Message result(std::string id, std::string content = "42") {
    Message m = make(Role::tool, std::move(content));
    m.tool_call_id = std::move(id);
    return m;
}

Message tokens(Message m, std::int64_t count) {
    m.token_count = count;
    return m;
}

/** Stamps conversation_id and seq = 1..n, as the library does when it stores messages. */
std::vector<Message> numbered(std::vector<Message> ms) {
    for (std::size_t i = 0; i < ms.size(); ++i) {
        ms[i].conversation_id = "conv";
        ms[i].seq = static_cast<std::int64_t>(i + 1);
    }
    return ms;
}

using cstest::leading_system;
using cstest::seqs;

/** The seqs of the window selected over a whole in-memory history. */
Seqs window_seqs(const HistoryWindow& w, const std::vector<Message>& history) {
    return seqs(w.select(leading_system(history), history));
}

HistoryWindow without_system(HistoryWindow w) {
    w.keep_system = false;
    return w;
}

// ---------------------------------------------------------------------------------------------
// Property-test support.

char role_letter(Role r) {
    switch (r) {
    case Role::system: return 'S';
    case Role::user: return 'U';
    case Role::assistant: return 'A';
    case Role::tool: return 'T';
    case Role::developer: return 'D';
    }
    return '?';
}

/** Compact rendering for failure messages: "1:S 2:U 3:A[c0,c1] 4:T(c1) 5:T(c0)". */
std::string describe(const std::vector<Message>& ms) {
    std::ostringstream out;
    for (const Message& m : ms) {
        out << m.seq << ':' << role_letter(m.role);
        if (!m.tool_calls.empty()) {
            out << '[';
            for (std::size_t i = 0; i < m.tool_calls.size(); ++i)
                out << (i ? "," : "") << m.tool_calls[i].id;
            out << ']';
        }
        if (m.tool_call_id) out << '(' << *m.tool_call_id << ')';
        out << ' ';
    }
    return out.str();
}

std::string describe(const HistoryWindow& w, bool custom_counter) {
    std::ostringstream out;
    switch (w.kind) {
    case HistoryWindow::Kind::all: out << "all"; break;
    case HistoryWindow::Kind::last_messages: out << "last(" << w.max_messages << ")"; break;
    case HistoryWindow::Kind::token_budget:
        out << "tokens(" << w.token_budget << (custom_counter ? ", content length" : "") << ")";
        break;
    }
    out << " keep_system=" << w.keep_system;
    return out.str();
}

struct Generated {
    std::vector<Message> history;
    bool fully_valid = true; ///< ground truth: no incomplete group and no stray tool message
};

/** A random history: 0-3 leading system messages, then units (user, assistant, mid-conversation
 *  system, tool-call groups whose results come in random order), sometimes broken. */
Generated generate(std::mt19937_64& rng) {
    auto chance = [&](double p) { return std::bernoulli_distribution(p)(rng); };
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    auto text = [&] {
        std::string s(static_cast<std::size_t>(pick(0, 160)), 'x');
        for (char& c : s) c = static_cast<char>('a' + pick(0, 25));
        return s;
    };
    int next_id = 0;
    auto fresh_id = [&] { return "c" + std::to_string(next_id++); };

    Generated g;
    auto add = [&](Message m) {
        if (chance(0.25)) m.token_count = pick(0, 120);
        g.history.push_back(std::move(m));
    };
    auto stray = [&] { // a tool message answering no call at all
        add(result("stray_" + fresh_id(), text()));
        g.fully_valid = false;
    };

    const double p_broken = chance(0.5) ? 0.06 : 0.0; // half the histories are entirely valid
    // Instructions: system, or developer (kept alike).
    for (int k = pick(0, 3); k > 0; --k) add(make(chance(0.3) ? Role::developer : Role::system, text()));
    const int units = pick(0, 40);
    for (int u = 0; u < units; ++u) {
        if (chance(p_broken)) stray();
        const int kind = pick(0, 99);
        if (kind < 35) {
            add(make(Role::user, text()));
        } else if (kind < 60) {
            add(make(Role::assistant, text()));
        } else if (kind < 66) {
            add(make(chance(0.3) ? Role::developer : Role::system, text())); // mid-conversation: not the prefix
        } else {
            Message a = make(Role::assistant, chance(0.5) ? text() : std::string{});
            std::vector<std::string> ids;
            for (int n = pick(1, 4); n > 0; --n) {
                ids.push_back(fresh_id());
                a.tool_calls.push_back(call(ids.back(), "fn" + std::to_string(pick(0, 9)),
                                            "{\"q\":\"" + text() + "\"}"));
            }
            add(std::move(a));
            std::shuffle(ids.begin(), ids.end(), rng);
            if (chance(p_broken)) {
                g.fully_valid = false;
                const auto victim = static_cast<std::size_t>(pick(0, static_cast<int>(ids.size()) - 1));
                if (chance(0.5))
                    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(victim)); // missing result
                else
                    ids[victim] = "unknown_" + fresh_id(); // result with an unknown call id
            }
            for (const std::string& id : ids) {
                Message t = result(id, text());
                if (chance(0.5)) t.name = "fn";
                add(std::move(t));
            }
        }
    }
    if (chance(p_broken)) stray();
    g.history = numbered(std::move(g.history));
    return g;
}

/** A structural unit of a message run: a non-tool message with the tool messages directly after
 *  it, or a run of tool messages with nothing before it. Valid: a message without tool calls and
 *  nothing after it, or an assistant message whose calls (unique ids) are each answered exactly
 *  once by the tool messages after it, and nothing else. */
struct Unit {
    std::size_t begin, end;
    bool valid;
};

std::vector<Unit> units_of(const std::vector<Message>& ms) {
    std::vector<Unit> units;
    for (std::size_t i = 0; i < ms.size();) {
        std::size_t j = i + 1;
        while (j < ms.size() && ms[j].role == Role::tool) ++j;
        bool valid;
        if (ms[i].role == Role::tool) {
            valid = false;
        } else if (ms[i].tool_calls.empty()) {
            valid = j == i + 1;
        } else {
            std::vector<std::string> wanted, got;
            for (const ToolCall& c : ms[i].tool_calls) wanted.push_back(c.id);
            for (std::size_t k = i + 1; k < j; ++k) got.push_back(ms[k].tool_call_id.value_or(""));
            std::sort(wanted.begin(), wanted.end());
            std::sort(got.begin(), got.end());
            valid = ms[i].role == Role::assistant &&
                    std::adjacent_find(wanted.begin(), wanted.end()) == wanted.end() && wanted == got;
        }
        units.push_back({i, j, valid});
        i = j;
    }
    return units;
}

/** Checks one selection against the contract; returns the first violation, or "" if none. */
std::string violation(const std::vector<Message>& history, const std::vector<Message>& prefix,
                      const HistoryWindow& w, const std::vector<Message>& window, bool fully_valid) {
    const TokenCounter count = w.token_counter ? w.token_counter : TokenCounter(estimate_tokens);
    auto cost = [&](auto first, auto last) {
        std::int64_t sum = 0;
        for (; first != last; ++first) sum += count(*first);
        return sum;
    };

    // System rule: with keep_system the window starts with exactly the prefix.
    const std::size_t kept_prefix = w.keep_system ? prefix.size() : 0;
    if (window.size() < kept_prefix ||
        !std::equal(prefix.begin(), prefix.begin() + static_cast<std::ptrdiff_t>(kept_prefix), window.begin()))
        return "keep_system: the window does not start with exactly the leading system messages";

    // Order: strictly increasing seqs over the whole window (no duplicates).
    for (std::size_t i = 1; i < window.size(); ++i)
        if (window[i].seq <= window[i - 1].seq) return "the window is not in strictly increasing seq order";

    // Suffix rule: apart from the kept prefix, the window is a suffix of the history (without
    // the prefix when it is kept separately).
    const std::vector<Message> rest(history.begin() + static_cast<std::ptrdiff_t>(kept_prefix), history.end());
    const std::vector<Message> tail(window.begin() + static_cast<std::ptrdiff_t>(kept_prefix), window.end());
    if (tail.size() > rest.size() ||
        !std::equal(tail.begin(), tail.end(), rest.end() - static_cast<std::ptrdiff_t>(tail.size())))
        return "apart from the kept prefix, the window is not a contiguous suffix of the history";
    const std::size_t start = rest.size() - tail.size(); // index in `rest` where the window starts

    if (!tail.empty() && tail.front().role == Role::tool)
        return "the window (apart from the kept prefix) starts with a tool message";

    // Tool-call integrity over the whole window.
    for (std::size_t i = 0; i < window.size(); ++i) {
        const Message& m = window[i];
        if (m.role == Role::tool) {
            std::size_t j = i;
            while (j > 0 && window[j - 1].role == Role::tool) --j;
            if (j == 0) return "a kept tool message has no kept call before it (seq " + std::to_string(m.seq) + ")";
            const Message& a = window[j - 1];
            const bool answered = std::any_of(a.tool_calls.begin(), a.tool_calls.end(),
                                              [&](const ToolCall& c) { return c.id == m.tool_call_id; });
            if (a.role != Role::assistant || !answered)
                return "a kept tool message answers no call of the group before it (seq " +
                       std::to_string(m.seq) + ")";
        } else if (!m.tool_calls.empty()) {
            std::vector<std::string> wanted, got;
            for (const ToolCall& c : m.tool_calls) wanted.push_back(c.id);
            for (std::size_t k = i + 1; k < window.size() && window[k].role == Role::tool; ++k)
                got.push_back(window[k].tool_call_id.value_or(""));
            std::sort(wanted.begin(), wanted.end());
            std::sort(got.begin(), got.end());
            if (wanted != got)
                return "a kept tool call group is not answered exactly by the tool messages after it (seq " +
                       std::to_string(m.seq) + ")";
        }
    }

    const std::vector<Unit> units = units_of(rest);
    if (fully_valid && !std::all_of(units.begin(), units.end(), [](const Unit& u) { return u.valid; }))
        return "test oracle: a generated-valid history has an invalid unit";
    const bool newest_is_valid = !units.empty() && units.back().valid;
    const bool tail_is_newest_unit = !units.empty() && start == units.back().begin;
    const std::int64_t budget_left =
        w.token_budget - (w.keep_system ? cost(prefix.begin(), prefix.end()) : 0);
    const std::int64_t tail_cost = cost(tail.begin(), tail.end());

    // Size rules.
    if (w.kind == HistoryWindow::Kind::last_messages && tail.size() > w.max_messages)
        return "last(N): more than N messages apart from the kept prefix";
    if (w.kind == HistoryWindow::Kind::token_budget) {
        // (An empty tail is fine even when the kept prefix alone is over budget.)
        if (!tail.empty() && tail_cost > budget_left && !tail_is_newest_unit)
            return "tokens: over budget (" + std::to_string(tail_cost) + " > " + std::to_string(budget_left) +
                   ") and more than the newest unit";
        if (newest_is_valid && tail.empty()) return "tokens: the newest (complete) message was not kept";
    }

    // Maximality.
    if (w.kind == HistoryWindow::Kind::all && fully_valid && window != history)
        return "all: a fully valid history was not returned whole";
    if (start > 0) {
        const auto before = std::find_if(units.begin(), units.end(), [&](const Unit& u) { return u.end == start; });
        if (before == units.end()) return "the window starts inside a tool-call group";
        if (before->valid) {
            const auto size = before->end - before->begin;
            const std::int64_t unit_cost = cost(rest.begin() + static_cast<std::ptrdiff_t>(before->begin),
                                                rest.begin() + static_cast<std::ptrdiff_t>(before->end));
            switch (w.kind) {
            case HistoryWindow::Kind::all:
                return "all: dropped a complete unit with no incomplete group after it";
            case HistoryWindow::Kind::last_messages:
                if (tail.size() + size <= w.max_messages)
                    return "last(N): the next older complete unit would have fit but was dropped";
                break;
            case HistoryWindow::Kind::token_budget:
                if (tail_cost + unit_cost <= budget_left)
                    return "tokens: the next older complete unit would have fit but was dropped";
                break;
            }
        }
    }
    return {};
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* text = std::getenv(name);
    return text && *text ? std::strtoull(text, nullptr, 0) : fallback;
}

} // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("window: property test over random histories") {
    // CONVSTATE_WINDOW_SEED reproduces a run; CONVSTATE_WINDOW_HISTORIES changes its length.
    const std::uint64_t seed = env_number("CONVSTATE_WINDOW_SEED", 20240601);
    const std::uint64_t histories = env_number("CONVSTATE_WINDOW_HISTORIES", 10000);
    INFO("CONVSTATE_WINDOW_SEED=", seed);

    struct {
        std::uint64_t checked = 0, valid = 0, broken = 0, cut = 0, kept_broken = 0, over_budget = 0, empty = 0;
    } stats;
    int failures = 0;
    for (std::uint64_t i = 0; i < histories && failures < 10; ++i) {
        std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                          static_cast<std::uint32_t>(i)};
        std::mt19937_64 rng(seq);
        const Generated g = generate(rng);
        const std::vector<Message> prefix = leading_system(g.history);

        HistoryWindow w;
        bool custom = false;
        switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
        case 0: w = HistoryWindow::everything(); break;
        case 1: w = HistoryWindow::last(std::uniform_int_distribution<std::size_t>(1, 40)(rng)); break;
        default: {
            const auto budget = std::uniform_int_distribution<std::int64_t>(1, 400)(rng);
            custom = std::bernoulli_distribution(0.3)(rng);
            w = custom ? HistoryWindow::tokens(budget, [](const Message& m) {
                return static_cast<std::int64_t>(m.content.size());
            })
                       : HistoryWindow::tokens(budget);
        }
        }
        w.keep_system = std::bernoulli_distribution(0.6)(rng);

        const std::vector<Message> window = w.select(prefix, g.history);
        const std::string error = violation(g.history, prefix, w, window, g.fully_valid);
        // The moving overload (what the library's loaders use) selects the very same messages.
        {
            std::vector<Message> prefix_copy = prefix, history_copy = g.history;
            CHECK(w.select(std::move(prefix_copy), std::move(history_copy)) == window);
        }

        CAPTURE(i);
        INFO("window: ", describe(w, custom));
        INFO("history: ", describe(g.history));
        INFO("selected: ", describe(window));
        CHECK_MESSAGE(error.empty(), error);
        if (!error.empty()) ++failures;

        ++stats.checked;
        ++(g.fully_valid ? stats.valid : stats.broken);
        const std::size_t non_prefix = g.history.size() - (w.keep_system ? prefix.size() : 0);
        const std::size_t kept = window.size() - (w.keep_system ? prefix.size() : 0);
        if (g.fully_valid && kept < non_prefix) ++stats.cut;
        if (!g.fully_valid && kept > 0) ++stats.kept_broken;
        if (kept == 0) ++stats.empty;
        if (w.kind == HistoryWindow::Kind::token_budget && kept > 0) {
            std::int64_t spent = 0;
            for (const Message& m : window) spent += w.token_counter ? w.token_counter(m) : estimate_tokens(m);
            if (spent > w.token_budget) ++stats.over_budget;
        }
    }
    INFO("checked=", stats.checked, " valid=", stats.valid, " broken=", stats.broken, " cut=", stats.cut,
         " kept_broken=", stats.kept_broken, " over_budget=", stats.over_budget, " empty=", stats.empty);
    // The generator must actually exercise the interesting cases.
    if (failures == 0) {
        CHECK(stats.checked == histories);
        CHECK(stats.valid * 4 >= histories);
        CHECK(stats.broken * 4 >= histories);
        CHECK(stats.cut * 10 >= histories);
        CHECK(stats.kept_broken * 10 >= histories);
        CHECK(stats.over_budget * 200 >= histories);
        CHECK(stats.empty * 100 >= histories);
    }
}

TEST_CASE("window: last-N cutting through a tool group drops the whole group") {
    const auto h = numbered({user("weather?"), calls({"a", "b"}), result("b"), result("a"), asst("sunny"),
                             user("thanks")});
    CHECK(window_seqs(HistoryWindow::last(1), h) == Seqs{6});
    CHECK(window_seqs(HistoryWindow::last(2), h) == Seqs{5, 6});
    CHECK(window_seqs(HistoryWindow::last(3), h) == Seqs{5, 6}); // not {4, 5, 6}
    CHECK(window_seqs(HistoryWindow::last(4), h) == Seqs{5, 6}); // not {3, 4, 5, 6}
    CHECK(window_seqs(HistoryWindow::last(5), h) == Seqs{2, 3, 4, 5, 6});
    CHECK(window_seqs(HistoryWindow::last(6), h) == Seqs{1, 2, 3, 4, 5, 6});
    CHECK(window_seqs(HistoryWindow::last(40), h) == Seqs{1, 2, 3, 4, 5, 6});

    // The newest unit itself is a group larger than N: nothing of it is kept.
    const auto g = numbered({user("go"), calls({"a", "b", "c"}), result("a"), result("c"), result("b")});
    CHECK(window_seqs(HistoryWindow::last(3), g) == Seqs{});
    CHECK(window_seqs(HistoryWindow::last(4), g) == Seqs{2, 3, 4, 5});
}

TEST_CASE("window: a call whose results are missing at the end of the history is dropped") {
    // The window starts after the incomplete group; here nothing non-system comes after it.
    const auto h = numbered({sys(), user("weather?"), calls({"a", "b"}), result("a")});
    CHECK(window_seqs(HistoryWindow::everything(), h) == Seqs{1});
    CHECK(window_seqs(HistoryWindow::last(10), h) == Seqs{1});
    CHECK(window_seqs(HistoryWindow::tokens(10000), h) == Seqs{1});

    const auto pending = numbered({user("weather?"), calls({"a"})}); // no result at all yet
    CHECK(window_seqs(HistoryWindow::everything(), pending) == Seqs{});
    CHECK(window_seqs(HistoryWindow::last(1), pending) == Seqs{});

    // Once answered, the whole group is kept.
    const auto done = numbered({user("weather?"), calls({"a", "b"}), result("a"), result("b")});
    CHECK(window_seqs(HistoryWindow::everything(), done) == Seqs{1, 2, 3, 4});
}

TEST_CASE("window: an orphan tool message at the start is never first") {
    const auto h = numbered({result("lost"), user("hi"), asst("hello")});
    CHECK(window_seqs(HistoryWindow::everything(), h) == Seqs{2, 3});
    CHECK(window_seqs(HistoryWindow::last(3), h) == Seqs{2, 3});
    CHECK(window_seqs(HistoryWindow::last(2), h) == Seqs{2, 3});
    CHECK(window_seqs(HistoryWindow::tokens(10000), h) == Seqs{2, 3});

    // A run of orphans after the system prefix: the prefix is kept, the orphans are not.
    const auto s = numbered({sys(), result("x"), result("y"), user("hi")});
    CHECK(window_seqs(HistoryWindow::everything(), s) == Seqs{1, 4});
    CHECK(window_seqs(without_system(HistoryWindow::everything()), s) == Seqs{4});
}

TEST_CASE("window: leading system messages are kept with last-1") {
    const auto h = numbered({sys("a"), sys("b"), user("q1"), asst("a1"), user("q2")});
    CHECK(window_seqs(HistoryWindow::last(1), h) == Seqs{1, 2, 5});
    CHECK(window_seqs(HistoryWindow::last(2), h) == Seqs{1, 2, 4, 5});
    CHECK(window_seqs(HistoryWindow::last(3), h) == Seqs{1, 2, 3, 4, 5});
    CHECK(window_seqs(HistoryWindow::last(9), h) == Seqs{1, 2, 3, 4, 5});
    // The kept prefix is the messages themselves.
    const std::vector<Message> w = HistoryWindow::last(1).select(leading_system(h), h);
    REQUIRE(w.size() == 3);
    CHECK(w[0] == h[0]);
    CHECK(w[1] == h[1]);
    CHECK(w[2] == h[4]);

    // A mid-conversation system message is not part of the prefix: it counts like any message.
    const auto mid = numbered({sys("a"), user("q1"), sys("mid"), user("q2")});
    CHECK(window_seqs(HistoryWindow::last(1), mid) == Seqs{1, 4});
    CHECK(window_seqs(HistoryWindow::last(2), mid) == Seqs{1, 3, 4});

    // A conversation of system messages only.
    const auto only = numbered({sys("a"), sys("b")});
    CHECK(window_seqs(HistoryWindow::last(1), only) == Seqs{1, 2});
    CHECK(window_seqs(HistoryWindow::everything(), only) == Seqs{1, 2});
}

TEST_CASE("window: keep_system=false treats the system prefix as ordinary history") {
    const auto h = numbered({sys("a"), sys("b"), user("q1"), asst("a1"), user("q2")});
    CHECK(window_seqs(without_system(HistoryWindow::last(1)), h) == Seqs{5});
    CHECK(window_seqs(without_system(HistoryWindow::last(3)), h) == Seqs{3, 4, 5});
    CHECK(window_seqs(without_system(HistoryWindow::last(4)), h) == Seqs{2, 3, 4, 5});
    CHECK(window_seqs(without_system(HistoryWindow::last(5)), h) == Seqs{1, 2, 3, 4, 5});
    CHECK(window_seqs(without_system(HistoryWindow::everything()), h) == Seqs{1, 2, 3, 4, 5});

    // Token budget: the prefix is neither kept nor subtracted.
    const auto t = numbered({tokens(sys(), 50), tokens(user(), 10), tokens(asst(), 10)});
    CHECK(window_seqs(without_system(HistoryWindow::tokens(20)), t) == Seqs{2, 3});
    CHECK(window_seqs(HistoryWindow::tokens(20), t) == Seqs{1, 3});
    CHECK(window_seqs(HistoryWindow::tokens(70), t) == Seqs{1, 2, 3});
    CHECK(window_seqs(HistoryWindow::tokens(69), t) == Seqs{1, 3});
}

TEST_CASE("window: token budget keeps the newest message even when it alone exceeds the budget") {
    const auto h = numbered({tokens(sys(), 10), tokens(user(), 5), tokens(asst(), 100)});
    CHECK(window_seqs(HistoryWindow::tokens(50), h) == Seqs{1, 3});
    CHECK(window_seqs(HistoryWindow::tokens(1), h) == Seqs{1, 3});
    CHECK(window_seqs(without_system(HistoryWindow::tokens(50)), h) == Seqs{3});

    // The newest unit is a tool-call group over budget: kept whole.
    const auto g = numbered({tokens(user(), 5), tokens(calls({"a"}), 30), tokens(result("a"), 30)});
    CHECK(window_seqs(HistoryWindow::tokens(20), g) == Seqs{2, 3});

    // Exact fit is in; one token less is out. Prefix 10 is subtracted first.
    const auto f = numbered({tokens(sys(), 10), tokens(user(), 5), tokens(user(), 7), tokens(asst(), 8)});
    CHECK(window_seqs(HistoryWindow::tokens(25), f) == Seqs{1, 3, 4});
    CHECK(window_seqs(HistoryWindow::tokens(24), f) == Seqs{1, 4});
    CHECK(window_seqs(HistoryWindow::tokens(30), f) == Seqs{1, 2, 3, 4});

    // A custom counter replaces estimate_tokens (token_count is then ignored).
    const auto c = numbered({tokens(user("aaaa"), 1000), tokens(user("bb"), 1000), tokens(asst("ccc"), 1000)});
    const TokenCounter length = [](const Message& m) { return static_cast<std::int64_t>(m.content.size()); };
    CHECK(window_seqs(HistoryWindow::tokens(5, length), c) == Seqs{2, 3});
    CHECK(window_seqs(HistoryWindow::tokens(9, length), c) == Seqs{1, 2, 3});
    CHECK(window_seqs(HistoryWindow::tokens(8, length), c) == Seqs{2, 3});
}

TEST_CASE("window: a mid-history incomplete group makes the window start after it") {
    const auto missing = numbered({user("q"), calls({"a", "b"}), result("a"), user("q2"), asst("a2")});
    CHECK(window_seqs(HistoryWindow::everything(), missing) == Seqs{4, 5});
    CHECK(window_seqs(HistoryWindow::last(10), missing) == Seqs{4, 5});
    CHECK(window_seqs(HistoryWindow::tokens(100000), missing) == Seqs{4, 5});
    CHECK(window_seqs(HistoryWindow::last(1), missing) == Seqs{5});

    const auto unknown = numbered({user("q"), calls({"a"}), result("zzz"), user("q2"), asst("a2")});
    CHECK(window_seqs(HistoryWindow::everything(), unknown) == Seqs{4, 5});

    // A result with no call at all (after a plain assistant message).
    const auto stray = numbered({user("q"), asst("a"), result("x"), user("q2")});
    CHECK(window_seqs(HistoryWindow::everything(), stray) == Seqs{4});

    // An extra result after a complete group spoils the group.
    const auto extra = numbered({user("q"), calls({"a"}), result("a"), result("b"), user("q2")});
    CHECK(window_seqs(HistoryWindow::everything(), extra) == Seqs{5});

    // Two incomplete groups: the window starts after the newer one.
    const auto two = numbered({user("q"), calls({"a"}), user("q2"), calls({"b"}), result("zzz"), user("q3"),
                               asst("a3")});
    CHECK(window_seqs(HistoryWindow::everything(), two) == Seqs{6, 7});
    CHECK(window_seqs(HistoryWindow::last(3), two) == Seqs{6, 7});

    // The leading system messages are still kept; later valid groups are too.
    const auto later = numbered({sys(), user("q"), calls({"a"}), user("q2"), calls({"b", "c"}), result("c"),
                                 result("b"), asst("done")});
    CHECK(window_seqs(HistoryWindow::everything(), later) == Seqs{1, 4, 5, 6, 7, 8});
    CHECK(window_seqs(without_system(HistoryWindow::everything()), later) == Seqs{4, 5, 6, 7, 8});
}

TEST_CASE("window: estimate_tokens uses token_count when set, else ceil(bytes / 4) + 4") {
    CHECK(estimate_tokens(tokens(user("hello"), 7)) == 7);
    CHECK(estimate_tokens(tokens(user(std::string(1000, 'x')), 0)) == 0);
    CHECK(estimate_tokens(user("")) == 4);
    CHECK(estimate_tokens(user("a")) == 1 + 4);
    CHECK(estimate_tokens(user("hello")) == 2 + 4);    // 5 bytes
    CHECK(estimate_tokens(user("12345678")) == 2 + 4); // 8 bytes
    CHECK(estimate_tokens(user("123456789")) == 3 + 4);
    CHECK(estimate_tokens(user(std::string(400, 'x'))) == 100 + 4);
    Message named = user("hello"); // 5 + 3 = 8 bytes
    named.name = "bob";
    CHECK(estimate_tokens(named) == 2 + 4);
    named.name = "bobs"; // 9 bytes
    CHECK(estimate_tokens(named) == 3 + 4);
    // Multi-byte UTF-8 counts bytes, not characters: "é" is 2 bytes.
    CHECK(estimate_tokens(user("\xc3\xa9\xc3\xa9\xc3\xa9")) == 2 + 4); // 6 bytes
}

TEST_CASE("window: estimate_tokens counts tool-call ids, names and arguments as documented") {
    // Header: ceil(bytes / 4) over content, name and tool-call ids, names and arguments, plus 4.
    Message m = asst("");
    m.tool_calls.push_back(call("", "get_weather", "{\"city\":\"Paris\"}")); // 11 + 16 = 27 bytes
    CHECK(estimate_tokens(m) == 7 + 4);

    // The tool-call id counts too (the model sees it): 6 + 27 = 33 bytes.
    Message with_id = asst("");
    with_id.tool_calls.push_back(call("call_1", "get_weather", "{\"city\":\"Paris\"}"));
    CHECK(estimate_tokens(with_id) == 9 + 4);

    Message two = asst("ok"); // 2 + (1 + 2) + (3 + 2) = 10 bytes
    two.tool_calls.push_back(call("", "f", "{}"));
    two.tool_calls.push_back(call("", "ggg", "{}"));
    CHECK(estimate_tokens(two) == 3 + 4);
    // A known token_count wins over everything.
    CHECK(estimate_tokens(tokens(with_id, 3)) == 3);
}
