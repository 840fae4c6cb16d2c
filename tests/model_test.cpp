// Model-based test: random operation sequences run against the library and against a small
// in-memory reference model; after every step what the library shows (the operation's result
// or error, the touched conversation's messages and fields, listings page by page) must agree
// with the model. A failing sequence is shrunk to a minimal one and printed.
//
// Operations: create, append (keyed or not, with a right, stale or no expected_last_seq),
// append_batch (keyed, unkeyed, mixed, replays), turns (plain, keyed, retried, with a failing
// agent, with a last-n window checked inside the agent), split turns (begun, then completed,
// completed again, or failed, with other operations in between), loads (all, last n, after, before),
// rename, metadata, truncate (with and without expected_last_seq), delete, delete-all, list
// with cursors, summaries (added, replaced, refused; windows start from them), forks (at every
// point, with and without their own external key), external keys (create, get_or_create,
// get_by_key, a key taken), windows of every kind (last n, a token budget by the default
// estimate and by a host counter, with and without from_summary, everything) seen by turns,
// split turns and ChatOrchestrator::window, and every operation on another user's or a deleted
// conversation (NotFound).

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <convstate/chat_orchestrator.hpp>
#include <convstate/conversation_store.hpp>
#include <convstate/error.hpp>
#include <convstate/message_repository.hpp>

#include "support.hpp"

using namespace convstate;

namespace {

const char* const users[] = {"alice", "bob"};

enum class OpKind {
    create, append, batch, turn, load, rename, metadata, truncate, remove, remove_all, list, begin, finish,
    summarize, fork, window
};

struct Op {
    OpKind kind;
    int user = 0;     // users[user] makes the call
    int conv = 0;     // the conv-th conversation created so far (mod their number)
    int a = 0, b = 0; // operation-specific choices
    int c = 0;
    int d = 0;        // the history window of turns, split turns and window loads (window_spec)
};

std::string describe(const Op& op) {
    static const char* const names[] = {"create",   "append",    "batch",      "turn",   "load",       "rename",
                                        "metadata", "truncate",  "remove",     "remove_all", "list", "begin_turn",
                                        "finish_turn", "summarize", "fork",   "window"};
    std::ostringstream s;
    s << names[static_cast<int>(op.kind)] << "(user=" << users[op.user] << " conv=" << op.conv << " a=" << op.a
      << " b=" << op.b << " c=" << op.c << " d=" << op.d << ")";
    return s.str();
}

struct ModelMessage {
    Role role;
    std::string content;
    std::optional<std::string> key;
};

struct ModelConv {
    std::string id;
    int owner = 0;
    bool deleted = false;
    std::string title, metadata = "{}";
    std::vector<ModelMessage> msgs;
    std::map<std::size_t, std::string> summaries; // content by covers_through_seq
    std::optional<std::string> key;                // external key
    std::optional<ForkOrigin> forked_from;
    int born = 0; // creation order (forks() lists oldest first)
    // Keyed turns by key: whether their reply is stored (a truncate may have removed it).
    std::map<std::string, bool> turn_replied;
};

// A split turn begun and not yet known to be settled.
struct SplitTurn {
    std::size_t conv;
    int user;
    std::string token, message, reply;
    std::size_t user_seq;
    bool completed = false;
    std::size_t reply_seq = 0; // once completed
};

// The history window an op's d selects: last n, a token budget (by estimate_tokens or by a host
// counter of content bytes), or everything; from_summary on three times in four.
struct WindowSpec {
    enum { last, estimate, bytes, all } kind;
    std::size_t n = 0;
    std::int64_t budget = 0;
    bool from_summary = true;

    static WindowSpec of(int d) {
        WindowSpec s;
        s.kind = static_cast<decltype(s.kind)>(d % 4);
        const int size = d / 16; // 0..3
        s.n = 1 + static_cast<std::size_t>(size);
        s.budget = s.kind == estimate ? 6 + 6 * size : 8 + 10 * size;
        s.from_summary = (d / 4) % 4 != 0;
        return s;
    }
    HistoryWindow window() const {
        HistoryWindow w = kind == last       ? HistoryWindow::last(n)
                          : kind == estimate ? HistoryWindow::tokens(budget)
                          : kind == bytes    ? HistoryWindow::tokens(budget, [](const Message& m) {
                                                return static_cast<std::int64_t>(m.content.size());
                                            })
                                             : HistoryWindow::everything();
        w.from_summary = from_summary;
        return w;
    }
    // What the window counts for a message of this content (no stored token counts here).
    std::int64_t cost(const std::string& content) const {
        return kind == bytes ? static_cast<std::int64_t>(content.size())
                             : static_cast<std::int64_t>((content.size() + 3) / 4) + 4;
    }
};

// A message of a window as the model sees it: seq 0 for a summary.
struct Seen {
    std::int64_t seq;
    std::string content;
};

struct Mismatch {
    std::size_t step;
    std::string what;
};

// Runs ops against a fresh database and the model; the first disagreement, if any.
class Run {
public:
    explicit Run(const std::vector<Op>& ops) : ops_(ops) {}

    std::map<std::string, int> outcomes; // results of the ops on conversations, by error kind
    int replays = 0;                     // keyed turns answered from storage
    mutable int summary_windows = 0;     // windows checked that started from a summary

    std::optional<Mismatch> go() {
        Database db = cstest::open_fresh();
        ConversationStore store(db);
        MessageRepository messages(db);
        ChatOrchestrator chat(db);
        for (step_ = 0; step_ < ops_.size(); ++step_) {
            try {
                apply(ops_[step_], store, messages, chat);
            } catch (const Mismatch& m) {
                return m;
            } catch (const std::exception& e) {
                return Mismatch{step_, std::string("unexpected exception: ") + e.what()};
            }
        }
        return std::nullopt;
    }

private:
    [[noreturn]] void mismatch(const std::string& what) const { throw Mismatch{step_, what}; }
    void expect(bool ok, const std::string& what) const {
        if (!ok) mismatch(what);
    }

    // The kind of error a call threw ("" for none), the call made under catch.
    template <class F>
    std::string error_of(F&& f) {
        try {
            f();
            return "";
        } catch (const NotFound&) {
            return "NotFound";
        } catch (const Conflict&) {
            return "Conflict";
        } catch (const InvalidArgument& e) {
            return "InvalidArgument:" + e.field();
        } catch (const AgentError&) {
            return "AgentError";
        }
    }

    ModelConv* target(const Op& op) {
        if (convs_.empty()) return nullptr;
        return &convs_[static_cast<std::size_t>(op.conv) % convs_.size()];
    }
    // Whether the op's caller may see the conversation.
    static bool visible(const ModelConv& c, const Op& op) { return !c.deleted && c.owner == op.user; }

    void check_conv(ConversationStore& store, MessageRepository& messages, const ModelConv& c) {
        const std::string who = users[c.owner];
        if (c.deleted) {
            expect(error_of([&] { store.get(who, c.id); }) == "NotFound", "a deleted conversation is still found");
            if (c.key)
                expect(error_of([&] { store.get_by_key(who, *c.key); }) == "NotFound",
                       "a deleted conversation is still found by its key");
            return;
        }
        const Conversation got = store.get(who, c.id);
        expect(got.title == c.title, "title '" + got.title + "', model '" + c.title + "'");
        expect(got.external_key == c.key, "external_key " + got.external_key.value_or("(none)") + ", model " +
                                              c.key.value_or("(none)"));
        expect(got.forked_from == c.forked_from, "forked_from differs from the model's");
        if (c.key) expect(store.get_by_key(who, *c.key).id == c.id, "get_by_key finds another conversation");
        std::string sums, model_sums;
        for (const Summary& s : messages.summaries(who, c.id))
            sums += "(" + std::to_string(s.covers_through_seq) + ":" + s.content + ")";
        for (const auto& [covers, content] : c.summaries) model_sums += "(" + std::to_string(covers) + ":" + content + ")";
        expect(sums == model_sums, "summaries " + sums + ", model " + model_sums);
        std::vector<std::string> forks, model_forks;
        for (const Conversation& f : store.forks(who, c.id)) forks.push_back(f.id);
        std::vector<const ModelConv*> mine;
        for (const ModelConv& f : convs_)
            if (!f.deleted && f.forked_from && f.forked_from->conversation_id == c.id) mine.push_back(&f);
        std::sort(mine.begin(), mine.end(), [](const ModelConv* x, const ModelConv* y) { return x->born < y->born; });
        for (const ModelConv* f : mine) model_forks.push_back(f->id);
        expect(forks == model_forks, "forks() lists " + std::to_string(forks.size()) + ", model " +
                                         std::to_string(model_forks.size()));
        expect(got.metadata_json == c.metadata, "metadata " + got.metadata_json + ", model " + c.metadata);
        expect(got.last_seq == static_cast<std::int64_t>(c.msgs.size()),
               "last_seq " + std::to_string(got.last_seq) + ", model " + std::to_string(c.msgs.size()));
        const std::vector<Message> all = messages.load_all(who, c.id);
        expect(all.size() == c.msgs.size(),
               "holds " + std::to_string(all.size()) + " messages, model " + std::to_string(c.msgs.size()));
        for (std::size_t i = 0; i < all.size(); ++i) {
            const ModelMessage& m = c.msgs[i];
            expect(all[i].seq == static_cast<std::int64_t>(i + 1), "seqs not dense");
            expect(all[i].role == m.role && all[i].content == m.content,
                   "message " + std::to_string(i + 1) + " is '" + all[i].content + "', model '" + m.content + "'");
            if (m.key) expect(all[i].idempotency_key == m.key, "message " + std::to_string(i + 1) + " lost its key");
        }
    }

    void same(const std::vector<Message>& got, const ModelConv& c, std::size_t from, std::size_t to, const char* what) {
        expect(got.size() == to - from, std::string(what) + ": " + std::to_string(got.size()) + " messages, model " +
                                             std::to_string(to - from));
        for (std::size_t i = 0; i < got.size(); ++i)
            expect(got[i].seq == static_cast<std::int64_t>(from + i + 1) && got[i].content == c.msgs[from + i].content,
                   std::string(what) + ": message " + std::to_string(i) + " differs");
    }

    // The model's window over messages 1..end of c.
    static std::vector<Seen> model_window(const ModelConv& c, std::size_t end, const WindowSpec& s) {
        std::vector<Seen> out;
        std::size_t from = 0; // the candidates are the messages after from
        std::int64_t spent = 0;
        if (s.from_summary)
            for (auto it = c.summaries.rbegin(); it != c.summaries.rend(); ++it)
                if (it->first <= end) {
                    out.push_back({0, it->second});
                    from = it->first;
                    spent = s.cost(it->second);
                    break;
                }
        std::size_t first = end; // the oldest message kept
        if (s.kind == WindowSpec::all) {
            first = from;
        } else if (s.kind == WindowSpec::last) {
            first = end - std::min(s.n, end - from);
        } else {
            while (first > from) {
                const std::int64_t after = spent + s.cost(c.msgs[first - 1].content);
                if (after > s.budget && first != end) break; // the newest message is always kept
                spent = after;
                --first;
            }
        }
        for (std::size_t i = first; i < end; ++i) out.push_back({static_cast<std::int64_t>(i + 1), c.msgs[i].content});
        return out;
    }

    void same_window(const std::vector<Message>& got, const std::vector<Seen>& want, const std::string& what) const {
        std::string g, w;
        for (const Message& m : got) g += "(" + std::to_string(m.seq) + ":" + m.content + ")";
        for (const Seen& m : want) w += "(" + std::to_string(m.seq) + ":" + m.content + ")";
        expect(g == w, what + " is " + g + ", model " + w);
        if (!want.empty() && want.front().seq == 0) ++summary_windows;
    }

    static Message user_message(const std::string& content, std::optional<std::string> key = std::nullopt) {
        Message m;
        m.role = Role::user;
        m.content = content;
        m.idempotency_key = std::move(key);
        return m;
    }

    void apply(const Op& op, ConversationStore& store, MessageRepository& messages, ChatOrchestrator& chat) {
        const std::string who = users[op.user];
        if (op.kind == OpKind::create) return create(op, store, messages);
        if (op.kind == OpKind::fork) return fork(op, store, messages);
        if (op.kind == OpKind::list) return check_list(store, op);
        if (op.kind == OpKind::finish) return finish(op, store, messages, chat);
        if (op.kind == OpKind::remove_all) {
            std::size_t expected = 0;
            for (ModelConv& c : convs_)
                if (!c.deleted && c.owner == op.user) c.deleted = true, ++expected;
            const std::size_t removed = store.remove_all(who);
            expect(removed == expected, "remove_all removed " + std::to_string(removed) + ", model " +
                                            std::to_string(expected));
            for (const ModelConv& c : convs_) check_conv(store, messages, c);
            return;
        }
        ModelConv* c = target(op);
        if (!c) return; // nothing created yet: the op means nothing in either
        const std::string err = [&] {
            switch (op.kind) {
            case OpKind::append: return append(op, *c, messages);
            case OpKind::batch: return batch(op, *c, messages);
            case OpKind::turn: return turn(op, *c, chat);
            case OpKind::load: return load(op, *c, messages);
            case OpKind::rename: {
                const std::string title = "t" + std::to_string(op.a);
                return error_of([&] { expect(store.rename(who, c->id, title).title == title, "rename result"); });
            }
            case OpKind::metadata: {
                const std::string meta = "{\"v\":" + std::to_string(op.a) + "}";
                return error_of([&] { store.set_metadata(who, c->id, meta); });
            }
            case OpKind::truncate: return truncate(op, *c, messages);
            case OpKind::begin: return begin(op, *c, chat);
            case OpKind::summarize: return summarize(op, *c, messages);
            case OpKind::window: {
                const WindowSpec spec = WindowSpec::of(op.d);
                return error_of([&] {
                    same_window(chat.window(who, c->id, spec.window()), model_window(*c, c->msgs.size(), spec), "window");
                });
            }
            case OpKind::remove: return error_of([&] { store.remove(who, c->id); });
            default: return std::string();
            }
        }();
        // The model's side of what the library did.
        if (!visible(*c, op)) {
            expect(err == "NotFound", describe(op) + " on an invisible conversation gave '" + err + "'");
        } else {
            expect(err == expected_error_, describe(op) + " gave '" + err + "', model '" + expected_error_ + "'");
            // A failed agent still stored the user message (the only pending one then).
            if (err.empty() || err == "AgentError") commit(op, *c);
        }
        ++outcomes[(err.empty() ? "ok" : err)];
        expected_error_.clear();
        pending_.clear();
        truncate_to_.reset();
        summary_.reset();
        check_conv(store, messages, *c);
    }

    // The caller's live conversation with this external key.
    ModelConv* with_key(int user, const std::string& key) {
        for (ModelConv& c : convs_)
            if (!c.deleted && c.owner == user && c.key == key) return &c;
        return nullptr;
    }

    // Adds a conversation to the model. An id seen before is a deleted conversation's, its
    // external key derived again: it comes back empty, as a new conversation (a split turn begun
    // on the old one is forgotten: the model does not say what completing it would do).
    ModelConv& add_conv(ModelConv c) {
        c.born = ++born_;
        for (std::size_t i = 0; i < convs_.size(); ++i) {
            if (convs_[i].id != c.id) continue;
            expect(convs_[i].deleted, "a new conversation has a live one's id");
            std::erase_if(splits_, [&](const SplitTurn& t) { return t.conv == i; });
            convs_[i] = std::move(c);
            return convs_[i];
        }
        convs_.push_back(std::move(c));
        return convs_.back();
    }

    // create (a % 4 >= 2), create with an external key (0), get_or_create (1); keys k0..k3.
    void create(const Op& op, ConversationStore& store, MessageRepository& messages) {
        const std::string who = users[op.user];
        const int mode = op.a % 4;
        NewConversation spec;
        if (mode < 2) spec.external_key = "k" + std::to_string(op.b % 4);
        ModelConv* existing = spec.external_key ? with_key(op.user, *spec.external_key) : nullptr;
        std::optional<Conversation> made;
        bool created = true;
        const std::string err = error_of([&] {
            if (mode == 1) {
                const GetOrCreateResult r = store.get_or_create(who, spec);
                made = r.conversation;
                created = r.created;
            } else {
                made = store.create(who, spec);
            }
        });
        ++outcomes[err.empty() ? (created ? "created" : "got by key") : err];
        if (existing) {
            expect(err == (mode == 1 ? "" : "Conflict"), describe(op) + " on a key taken gave '" + err + "'");
            if (made) expect(!created && made->id == existing->id, "get_or_create did not get the keyed conversation");
            return check_conv(store, messages, *existing);
        }
        expect(err.empty() && created, describe(op) + " gave '" + err + "'" + (created ? "" : ", not created"));
        ModelConv c;
        c.id = made->id;
        c.owner = op.user;
        c.key = spec.external_key;
        check_conv(store, messages, add_conv(std::move(c)));
    }

    // Forks the target at a % (n + 2) (past the end: refused), with its own key when c % 3 == 0
    // and its own title when c % 5 == 1.
    void fork(const Op& op, ConversationStore& store, MessageRepository& messages) {
        ModelConv* src = target(op);
        if (!src) return;
        const std::size_t source = static_cast<std::size_t>(src - convs_.data());
        const std::size_t n = src->msgs.size(), at = static_cast<std::size_t>(op.a) % (n + 2);
        ForkOptions options;
        if (op.c % 3 == 0) options.external_key = "k" + std::to_string(op.b % 4);
        if (op.c % 5 == 1) options.title = "f" + std::to_string(step_);
        std::string want;
        if (!visible(*src, op)) want = "NotFound";
        else if (at > n) want = "InvalidArgument:at_seq";
        else if (options.external_key && with_key(op.user, *options.external_key)) want = "Conflict";
        std::optional<Conversation> made;
        const std::string err = error_of([&] { made = store.fork(users[op.user], src->id, static_cast<std::int64_t>(at), options); });
        expect(err == want, describe(op) + " gave '" + err + "', model '" + want + "'");
        ++outcomes[err.empty() ? "forked" : err];
        if (err.empty()) {
            ModelConv f;
            f.id = made->id;
            f.owner = op.user;
            f.title = options.title.value_or(src->title);
            f.metadata = src->metadata;
            f.msgs.assign(src->msgs.begin(), src->msgs.begin() + static_cast<std::ptrdiff_t>(at));
            for (const auto& [covers, content] : src->summaries)
                if (covers <= at) f.summaries[covers] = content;
            f.key = options.external_key;
            f.forked_from = ForkOrigin{src->id, static_cast<std::int64_t>(at)};
            for (const auto& [key, replied] : src->turn_replied) f.turn_replied[key] = replied && reply_after(f, key);
            check_conv(store, messages, add_conv(std::move(f)));
        }
        check_conv(store, messages, convs_[source]);
    }

    std::string summarize(const Op& op, const ModelConv& c, MessageRepository& messages) {
        const std::size_t n = c.msgs.size(), covers = 1 + static_cast<std::size_t>(op.a) % (n + 1);
        const std::string content = "summary " + std::to_string(step_);
        if (covers > n) expected_error_ = "InvalidArgument:covers_through_seq";
        else summary_ = {covers, content};
        return error_of([&] {
            const Summary got = messages.add_summary(users[op.user], c.id, static_cast<std::int64_t>(covers), content);
            expect(got.covers_through_seq == static_cast<std::int64_t>(covers) && got.content == content,
                   "add_summary returned another summary");
        });
    }

    // What a successful op changes in the model (pending_ holds appended messages).
    void commit(const Op& op, ModelConv& c) {
        switch (op.kind) {
        case OpKind::rename: c.title = "t" + std::to_string(op.a); break;
        case OpKind::metadata: c.metadata = "{\"v\":" + std::to_string(op.a) + "}"; break;
        case OpKind::remove: c.deleted = true; break;
        default: break;
        }
        for (ModelMessage& m : pending_) c.msgs.push_back(std::move(m));
        if (summary_) c.summaries[summary_->first] = summary_->second;
        if (truncate_to_) {
            c.msgs.resize(std::min(c.msgs.size(), *truncate_to_));
            std::erase_if(c.summaries, [&](const auto& s) { return s.first > *truncate_to_; });
            truncate_to_.reset();
            for (auto& [key, replied] : c.turn_replied) replied = replied && reply_after(c, key);
            // A completed split turn whose reply went is forgotten (the model does not say what
            // completing it again would do); one whose user message went can only be NotFound.
            std::erase_if(splits_, [&](const SplitTurn& t) {
                return &convs_[t.conv] == &c && t.completed && c.msgs.size() < t.reply_seq;
            });
        }
    }

    static bool reply_after(const ModelConv& c, const std::string& key) {
        for (std::size_t i = 0; i + 1 < c.msgs.size(); ++i)
            if (c.msgs[i].key == "t-" + key) return c.msgs[i + 1].role == Role::assistant;
        return false;
    }

    // Keyed appends use keys "a-<n>" whose content is derived from the key, so a replay is the
    // same message; a key already in the conversation stores nothing.
    bool key_stored(const ModelConv& c, const std::string& key) const {
        return std::any_of(c.msgs.begin(), c.msgs.end(), [&](const ModelMessage& m) { return m.key == key; });
    }

    std::optional<std::int64_t> expected_seq(const Op& op, const ModelConv& c) const {
        if (op.b == 0) return std::nullopt;
        return op.b == 1 ? static_cast<std::int64_t>(c.msgs.size()) : static_cast<std::int64_t>(c.msgs.size()) + op.b;
    }

    std::string append(const Op& op, ModelConv& c, MessageRepository& messages) {
        const bool keyed = op.a % 2 == 1;
        const std::string key = "a-" + std::to_string(op.a % 6);
        const Message m = user_message(keyed ? "keyed " + key : "plain " + std::to_string(step_),
                                       keyed ? std::optional(key) : std::nullopt);
        const std::optional<std::int64_t> expect_seq = expected_seq(op, c);
        if (keyed && key_stored(c, key)) {
            // A replay: the stored message, whatever expected_last_seq says.
        } else if (expect_seq && *expect_seq != static_cast<std::int64_t>(c.msgs.size())) {
            expected_error_ = "Conflict";
        } else {
            pending_.push_back({Role::user, m.content, m.idempotency_key});
        }
        return error_of([&] {
            const Message got = messages.append(users[op.user], c.id, m, AppendOptions{expect_seq});
            expect(got.content == m.content, "append returned another message");
        });
    }

    std::string batch(const Op& op, ModelConv& c, MessageRepository& messages) {
        std::vector<Message> batch;
        const int n = 1 + op.a % 3;
        std::set<std::string> keys_in_batch;
        bool all_stored = true;
        for (int i = 0; i < n; ++i) {
            const bool keyed = (op.c >> i) & 1;
            const std::string key = "a-" + std::to_string((op.a + i) % 6);
            if (keyed && !keys_in_batch.insert(key).second) continue; // one key once per batch
            batch.push_back(user_message(keyed ? "keyed " + key : "batch " + std::to_string(step_) + "." + std::to_string(i),
                                         keyed ? std::optional(key) : std::nullopt));
            all_stored = all_stored && keyed && key_stored(c, key);
        }
        const std::optional<std::int64_t> expect_seq = expected_seq(op, c);
        if (!all_stored && expect_seq && *expect_seq != static_cast<std::int64_t>(c.msgs.size())) {
            expected_error_ = "Conflict";
        } else {
            for (const Message& m : batch)
                if (!(m.idempotency_key && key_stored(c, *m.idempotency_key)))
                    pending_.push_back({Role::user, m.content, m.idempotency_key});
        }
        return error_of([&] { messages.append_batch(users[op.user], c.id, batch, AppendOptions{expect_seq}); });
    }

    std::string turn(const Op& op, ModelConv& c, ChatOrchestrator& chat) {
        const std::string key = std::to_string(op.c % 2);
        // A keyed turn whose reply a truncate removed but whose user message it kept is not
        // retried (the model does not say how its claim on the agent would resolve): such a key
        // makes the turn an unkeyed one.
        const bool orphaned = key_stored(c, "t-" + key) && !c.turn_replied[key];
        const bool keyed = op.a % 2 == 0 && !orphaned;
        const bool failing = !keyed && op.a % 5 == 1;
        const WindowSpec spec = WindowSpec::of(op.d);
        TurnRequest req;
        req.user_id = users[op.user];
        req.conversation_id = c.id;
        req.message = keyed ? "turn " + key : "turn " + std::to_string(step_);
        if (keyed) req.idempotency_key = "t-" + key;
        req.window = spec.window();
        // The model's view of the turn.
        bool replay = false, user_stored = false;
        if (keyed && visible(c, op)) {
            user_stored = key_stored(c, "t-" + key);
            replay = user_stored && c.turn_replied[key];
        }
        ModelConv history = c; // as the turn will see it
        if (!user_stored) history.msgs.push_back({Role::user, req.message, req.idempotency_key});
        const std::size_t user_at = user_stored ? user_index(c, "t-" + key) : history.msgs.size() - 1;
        const std::string reply = "reply to " + req.message;
        if (failing) expected_error_ = "AgentError";
        if (!user_stored) pending_.push_back({Role::user, req.message, req.idempotency_key});
        if (!replay && !failing) pending_.push_back({Role::assistant, reply, std::nullopt});
        bool called = false;
        std::optional<Mismatch> in_agent; // the library would report it as the agent's failure
        const std::string err = error_of([&] {
            const TurnResult r = chat.turn(req, [&](const AgentInput& in) {
                called = true;
                try {
                    same_window(in.history, model_window(history, user_at + 1, spec), "the agent's window");
                } catch (const Mismatch& m) {
                    in_agent = m;
                }
                if (failing || in_agent) throw std::runtime_error("the model is down");
                return AgentReply{.content = reply};
            });
            expect(r.replayed == replay, "replayed is " + std::to_string(r.replayed));
            replays += r.replayed ? 1 : 0;
        });
        if (in_agent) throw *in_agent;
        if (visible(c, op)) {
            expect(called == !replay, replay ? "a replayed turn called the agent" : "the agent was not called");
            if (err.empty() && keyed) c.turn_replied[key] = true;
        }
        return err;
    }

    static std::size_t user_index(const ModelConv& c, const std::string& key) {
        for (std::size_t i = 0; i < c.msgs.size(); ++i)
            if (c.msgs[i].key == key) return i;
        return c.msgs.size();
    }

    std::string load(const Op& op, ModelConv& c, MessageRepository& messages) {
        const std::string who = users[op.user];
        const std::size_t n = c.msgs.size();
        return error_of([&] {
            switch (op.a % 4) {
            case 0: same(messages.load_all(who, c.id), c, 0, n, "load_all"); break;
            case 1: {
                const auto k = static_cast<std::size_t>(op.b % 6);
                same(messages.load_last(who, c.id, k), c, n > k ? n - k : 0, n, "load_last");
                break;
            }
            case 2: {
                const auto after = static_cast<std::size_t>(op.b % 8), limit = static_cast<std::size_t>(1 + op.c % 4);
                const std::size_t from = std::min(after, n);
                same(messages.load_after(who, c.id, static_cast<std::int64_t>(after), limit), c, from,
                     std::min(n, from + limit), "load_after");
                break;
            }
            default: {
                const auto before = static_cast<std::size_t>(1 + op.b % 8), limit = static_cast<std::size_t>(1 + op.c % 4);
                const std::size_t to = std::min(before - 1, n);
                same(messages.load_before(who, c.id, static_cast<std::int64_t>(before), limit), c,
                     to > limit ? to - limit : 0, to, "load_before");
            }
            }
        });
    }

    std::string truncate(const Op& op, ModelConv& c, MessageRepository& messages) {
        const std::size_t n = c.msgs.size();
        const std::size_t after = n == 0 ? 0 : static_cast<std::size_t>(op.a) % (n + 1);
        const std::optional<std::int64_t> expect_seq = expected_seq(op, c);
        if (expect_seq && *expect_seq != static_cast<std::int64_t>(n)) expected_error_ = "Conflict";
        else truncate_to_ = after;
        return error_of([&] {
            const std::int64_t removed = messages.truncate(users[op.user], c.id, static_cast<std::int64_t>(after), expect_seq);
            expect(removed == static_cast<std::int64_t>(n - std::min(after, n)), "truncate removed " +
                                                                                     std::to_string(removed));
        });
    }

    std::string begin(const Op& op, ModelConv& c, ChatOrchestrator& chat) {
        TurnRequest req;
        req.user_id = users[op.user];
        req.conversation_id = c.id;
        req.message = "split " + std::to_string(step_);
        const WindowSpec spec = WindowSpec::of(op.d);
        req.window = spec.window();
        pending_.push_back({Role::user, req.message, std::nullopt});
        ModelConv history = c;
        history.msgs.push_back({Role::user, req.message, std::nullopt});
        return error_of([&] {
            const PendingTurn p = chat.begin_turn(req);
            const std::size_t end = c.msgs.size() + 1;
            same_window(p.history, model_window(history, end, spec), "begin_turn's window");
            expect(p.user_seq == static_cast<std::int64_t>(end), "begin_turn stored its message elsewhere");
            splits_.push_back({static_cast<std::size_t>(&c - convs_.data()), op.user, p.token, req.message,
                               "reply to " + req.message, end});
        });
    }

    // Completes (a % 3 != 2) or fails a begun split turn; completing one twice is a replay.
    void finish(const Op& op, ConversationStore& store, MessageRepository& messages, ChatOrchestrator& chat) {
        if (splits_.empty()) return;
        SplitTurn& t = splits_[static_cast<std::size_t>(op.conv) % splits_.size()];
        ModelConv& c = convs_[t.conv];
        const bool user_there = !c.deleted && c.msgs.size() >= t.user_seq && c.msgs[t.user_seq - 1].content == t.message;
        const std::string who = users[t.user];
        if (op.a % 3 == 2) {
            const std::string err = error_of([&] { chat.fail_turn(who, t.token); });
            expect(err == (!c.deleted && (user_there || t.completed) ? "" : "NotFound"),
                   "fail_turn gave '" + err + "' (user message " + (user_there ? "there" : "gone") + ")");
        } else {
            bool replayed = false;
            const std::string err = error_of([&] {
                const TurnResult r = chat.complete_turn(who, t.token, AgentReply{.content = t.reply});
                replayed = r.replayed;
            });
            const std::string want = !c.deleted && (t.completed || user_there) ? "" : "NotFound";
            expect(err == want, "complete_turn gave '" + err + "', model '" + want + "'");
            if (err.empty()) {
                expect(replayed == t.completed, "complete_turn's replayed is " + std::to_string(replayed));
                if (!t.completed) {
                    c.msgs.push_back({Role::assistant, t.reply, std::nullopt});
                    t.reply_seq = c.msgs.size();
                }
                t.completed = true;
            }
            ++outcomes[err.empty() ? (replayed ? "split replayed" : "split completed") : err];
        }
        check_conv(store, messages, c);
    }

    void check_list(ConversationStore& store, const Op& op) {
        std::set<std::string> want;
        for (const ModelConv& c : convs_)
            if (!c.deleted && c.owner == op.user) want.insert(c.id);
        std::set<std::string> got;
        ListOptions options;
        options.limit = 1 + op.a % 3;
        std::optional<std::pair<std::int64_t, std::string>> previous;
        for (int pages = 0;; ++pages) {
            expect(pages <= 100, "list never ends");
            const ConversationPage page = store.list(users[op.user], options);
            for (const Conversation& c : page.items) {
                expect(got.insert(c.id).second, "list returned " + c.id + " twice");
                const std::pair<std::int64_t, std::string> at{c.updated_at_us, c.id};
                expect(!previous || at < *previous, "list is not most recent first");
                previous = at;
            }
            if (page.next_cursor.empty()) break;
            options.cursor = page.next_cursor;
        }
        expect(got == want, "list returned " + std::to_string(got.size()) + " conversations, model " +
                                std::to_string(want.size()));
    }

    const std::vector<Op>& ops_;
    std::size_t step_ = 0;
    std::vector<ModelConv> convs_;
    std::string expected_error_;
    std::vector<ModelMessage> pending_;
    std::optional<std::size_t> truncate_to_;
    std::optional<std::pair<std::size_t, std::string>> summary_; // a summary the op adds
    std::vector<SplitTurn> splits_;
    int born_ = 0;
};

std::vector<Op> random_ops(std::mt19937& rng, std::size_t n) {
    std::vector<Op> ops;
    std::uniform_int_distribution<int> kind(0, 119), small(0, 63);
    ops.push_back({OpKind::create, 0, 0, 0, 0, 0});
    for (std::size_t i = 1; i < n; ++i) {
        const int k = kind(rng);
        Op op{};
        op.kind = k < 8 ? OpKind::create : k < 28 ? OpKind::append : k < 37 ? OpKind::batch : k < 47 ? OpKind::turn
                : k < 52 ? OpKind::begin : k < 58 ? OpKind::finish
                : k < 72 ? OpKind::load : k < 76 ? OpKind::rename : k < 79 ? OpKind::metadata : k < 88 ? OpKind::truncate
                : k < 91 ? OpKind::remove : k < 92 ? OpKind::remove_all : k < 100 ? OpKind::list
                : k < 107 ? OpKind::summarize : k < 112 ? OpKind::fork : OpKind::window;
        if (op.kind == OpKind::remove_all && small(rng) >= 16) op.kind = OpKind::list; // rarely: it ends everything
        op.user = small(rng) < 8 ? 1 : 0; // mostly the owner of most conversations
        if (op.kind == OpKind::create) op.user = small(rng) < 16 ? 1 : 0;
        op.conv = small(rng);
        op.a = small(rng);
        op.b = small(rng) % 4;
        op.c = small(rng);
        op.d = small(rng);
        ops.push_back(op);
    }
    return ops;
}

// Removes chunks of ops while the run still fails (a simple delta debugging).
std::vector<Op> shrink(std::vector<Op> ops) {
    for (std::size_t chunk = ops.size() / 2; chunk >= 1; chunk /= 2) {
        for (std::size_t at = 0; at + chunk <= ops.size();) {
            std::vector<Op> fewer = ops;
            fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(at), fewer.begin() + static_cast<std::ptrdiff_t>(at + chunk));
            if (Run(fewer).go()) ops = std::move(fewer);
            else at += chunk;
        }
        if (chunk == 1) break;
    }
    return ops;
}

} // namespace

TEST_CASE("model: random operation sequences agree with a reference model at every step") {
    // CONVSTATE_MODEL_SEQUENCES and CONVSTATE_MODEL_SEED change the defaults, for long runs.
    const auto env_or = [](const char* name, unsigned long fallback) {
        const char* v = std::getenv(name);
        return v && *v ? std::stoul(v) : fallback;
    };
    const int sequences =
        static_cast<int>(env_or("CONVSTATE_MODEL_SEQUENCES", std::string(cstest::backend_name()) == "sqlite" ? 150 : 30));
    const std::size_t length = 60;
    const auto seed = static_cast<std::mt19937::result_type>(env_or("CONVSTATE_MODEL_SEED", 20261203));
    std::mt19937 rng(seed);
    int steps = 0, replays = 0, summary_windows = 0;
    std::map<std::string, int> outcomes;
    for (int s = 0; s < sequences; ++s) {
        const std::vector<Op> ops = random_ops(rng, length);
        Run run(ops);
        const std::optional<Mismatch> failed = run.go();
        steps += static_cast<int>(ops.size());
        replays += run.replays;
        summary_windows += run.summary_windows;
        for (const auto& [kind, n] : run.outcomes) outcomes[kind] += n;
        if (!failed) continue;
        const std::vector<Op> minimal = shrink(ops);
        const std::optional<Mismatch> again = Run(minimal).go();
        std::ostringstream out;
        out << "sequence " << s << " failed at step " << failed->step << ": " << failed->what << "\nshrunk to "
            << minimal.size() << " ops:\n";
        for (std::size_t i = 0; i < minimal.size(); ++i) out << "  " << i << ": " << describe(minimal[i]) << "\n";
        if (again) out << "which fails at step " << again->step << ": " << again->what << "\n";
        FAIL(out.str());
    }
    std::ostringstream summary;
    for (const auto& [kind, n] : outcomes) summary << " " << kind << "=" << n;
    MESSAGE(sequences << " sequences (seed " << seed << "), " << steps << " steps on " << std::string(cstest::backend_name())
                      << "; outcomes:" << summary.str() << "; replayed turns=" << replays
                      << "; windows from a summary=" << summary_windows);
    // The sequences reach every outcome the model distinguishes.
    for (const char* kind : {"ok", "NotFound", "Conflict", "AgentError", "split completed", "split replayed", "created",
                             "got by key", "forked", "InvalidArgument:at_seq", "InvalidArgument:covers_through_seq"})
        CHECK_MESSAGE(outcomes[kind] > 0, kind);
    CHECK(replays > 0);
    CHECK(summary_windows > 0);
}

// The same operations from 4 threads on shared conversations. No single order is predicted;
// what every interleaving must keep is checked instead: seqs stay dense, every acknowledged write
// is stored where it was acknowledged, once (keyed retries included), compare-and-append gets the
// seq it asked for, and every agent saw a window of consecutive messages ending with its turn's
// user message.
TEST_CASE("model: 4 threads interleaving on shared conversations keep every invariant") {
    Database db = cstest::open_fresh();
    ConversationStore store(db);
    MessageRepository messages(db);
    ChatOrchestrator chat(db);
    const std::vector<std::string> convs{store.create("alice").id, store.create("alice").id};
    struct Ack {
        std::string conv;
        std::int64_t seq;
        std::string content;
    };
    std::mutex mu;
    std::vector<Ack> acks;
    std::vector<std::string> problems;
    std::atomic<int> conflicts{0};
    const int per_thread = std::string(cstest::backend_name()) == "sqlite" ? 60 : 30;
    auto worker = [&](int t) {
        std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 17u);
        std::vector<Ack> mine;
        std::vector<std::string> bad;
        try {
            for (int i = 0; i < per_thread; ++i) {
                const std::string& conv = convs[rng() % convs.size()];
                const std::string tag = "t" + std::to_string(t) + "." + std::to_string(i);
                switch (rng() % 4) {
                case 0: { // plain append
                    Message m;
                    m.content = "append " + tag;
                    mine.push_back({conv, messages.append("alice", conv, m).seq, m.content});
                    break;
                }
                case 1: { // keyed append, sent twice (a retry): stored once
                    Message m;
                    m.content = "keyed " + tag;
                    m.idempotency_key = "k-" + tag;
                    const std::int64_t first = messages.append("alice", conv, m).seq;
                    if (messages.append("alice", conv, m).seq != first) bad.push_back(tag + ": a keyed retry moved");
                    mine.push_back({conv, first, m.content});
                    break;
                }
                case 2: { // compare-and-append until it wins
                    Message m;
                    m.content = "cas " + tag;
                    for (;;) {
                        const std::int64_t last = store.get("alice", conv).last_seq;
                        try {
                            const std::int64_t seq = messages.append("alice", conv, m, AppendOptions{last}).seq;
                            if (seq != last + 1) bad.push_back(tag + ": compare-and-append got another seq");
                            mine.push_back({conv, seq, m.content});
                            break;
                        } catch (const Conflict&) {
                            ++conflicts;
                        }
                    }
                    break;
                }
                default: { // a turn, keyed half the time and then retried
                    TurnRequest req;
                    req.user_id = "alice";
                    req.conversation_id = conv;
                    req.message = "turn " + tag;
                    if (rng() % 2) req.idempotency_key = "tk-" + tag;
                    req.window = HistoryWindow::last(1 + rng() % 5);
                    auto agent = [&](const AgentInput& in) {
                        bool ok = !in.history.empty() && in.history.back().content == req.message;
                        for (std::size_t k = 1; k < in.history.size(); ++k)
                            ok = ok && in.history[k].seq == in.history[k - 1].seq + 1;
                        if (!ok) bad.push_back(tag + ": the agent's window is not consecutive up to its message");
                        return AgentReply{.content = "reply " + tag};
                    };
                    const TurnResult r = chat.turn(req, agent);
                    if (req.idempotency_key) {
                        const TurnResult again = chat.turn(req, agent);
                        if (!again.replayed || again.user_seq != r.user_seq || again.reply_seq != r.reply_seq)
                            bad.push_back(tag + ": a keyed turn's retry was not a replay of it");
                    }
                    if (r.reply_seq <= r.user_seq) bad.push_back(tag + ": the reply is not after its message");
                    mine.push_back({conv, r.user_seq, req.message});
                    mine.push_back({conv, r.reply_seq, "reply " + tag});
                }
                }
            }
        } catch (const std::exception& e) {
            bad.push_back(std::string("thread failed: ") + e.what());
        }
        std::lock_guard lock(mu);
        acks.insert(acks.end(), mine.begin(), mine.end());
        problems.insert(problems.end(), bad.begin(), bad.end());
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
    for (std::thread& th : threads) th.join();
    for (const std::string& p : problems) FAIL_CHECK(p);
    std::size_t stored = 0;
    for (const std::string& conv : convs) {
        const std::vector<Message> all = messages.load_all("alice", conv);
        stored += all.size();
        for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq == static_cast<std::int64_t>(i + 1));
        for (const Ack& a : acks) {
            if (a.conv != conv) continue;
            REQUIRE(a.seq >= 1);
            REQUIRE(a.seq <= static_cast<std::int64_t>(all.size()));
            CHECK(all[static_cast<std::size_t>(a.seq - 1)].content == a.content);
        }
    }
    // Nothing stored that was not acknowledged (each acknowledged write once).
    CHECK(stored == acks.size());
    MESSAGE(acks.size() << " acknowledged messages from 4 threads on " << std::string(cstest::backend_name()) << ", "
                        << conflicts.load() << " compare-and-append conflicts retried");
}
