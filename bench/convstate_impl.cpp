// impl=convstate: the turn through ChatOrchestrator::turn, with a stub agent that checks the
// window it was shown and returns the fixed 300-byte reply at once.

#include <convstate/convstate.hpp>

#include <fmt/format.h>

#include "bench.hpp"

namespace bench {
namespace {

convstate::HistoryWindow to_history(const Window& w) {
    return w.all ? convstate::HistoryWindow::everything()
                 : convstate::HistoryWindow::last(static_cast<std::size_t>(w.n));
}

class ConvstateClient final : public Client {
public:
    ConvstateClient(const convstate::Database& db, Window w)
        : db_(db), chat_(db, convstate::OrchestratorOptions{.window = to_history(w)}), w_(w) {}

    TurnOut turn(const std::string& user, const std::string& conversation_id, const std::string& text) override {
        convstate::TurnRequest req;
        req.user_id = user;
        if (!conversation_id.empty()) req.conversation_id = conversation_id;
        req.message = text;
        const Window w = w_;
        convstate::TurnResult r;
        try {
            r = chat_.turn(req, [&](const convstate::AgentInput& in) {
                check_window(w, in.history, text, "convstate");
                return convstate::AgentReply{.content = reply_text()};
            });
        } catch (const convstate::Error& e) {
            fail(std::string("convstate: turn failed: ") + e.what());
        }
        return TurnOut{std::move(r.conversation_id), r.user_seq, r.reply_seq};
    }

    void load_last(const std::string& user, const std::string& conversation_id, int n, long long last_seq) override {
        std::vector<convstate::Message> rows;
        try {
            rows = convstate::MessageRepository(db_).load_last(user, conversation_id, static_cast<std::size_t>(n));
        } catch (const convstate::Error& e) {
            fail(std::string("convstate: load_last failed: ") + e.what());
        }
        if (static_cast<long long>(rows.size()) != n || rows.front().seq != last_seq - n + 1 || rows.back().seq != last_seq)
            fail(fmt::format("convstate: load_last({}) returned {} rows", n, rows.size()));
    }

private:
    convstate::Database db_;
    convstate::ChatOrchestrator chat_;
    Window w_;
};

class Convstate final : public Impl {
public:
    explicit Convstate(const std::string& url) : db_(open(url)) {}
    const char* name() const override { return "convstate"; }
    std::unique_ptr<Client> client(const Window& w) override { return std::make_unique<ConvstateClient>(db_, w); }
    std::uint64_t round_trips() const override { return db_.stats().statements; }
    std::vector<Row> load_all(const std::string& user, const std::string& id) override {
        std::vector<Row> rows;
        try {
            for (convstate::Message& m : convstate::MessageRepository(db_).load_all(user, id))
                rows.push_back(Row{m.seq, std::string(convstate::to_string(m.role)), std::move(m.content),
                                   m.name.value_or(""), "", m.tool_call_id.value_or("")});
        } catch (const convstate::Error& e) {
            fail(std::string("convstate: load_all failed: ") + e.what());
        }
        return rows;
    }
    std::string create_conversation(const std::string& user) override {
        try {
            return convstate::ConversationStore(db_).create(user).id;
        } catch (const convstate::Error& e) {
            fail(std::string("convstate: create failed: ") + e.what());
        }
    }

private:
    static convstate::Database open(const std::string& url) {
        convstate::DatabaseOptions options;
        options.pool_size = 8; // S3/S4 run 8 clients on one pool
        try {
            return convstate::Database::open(url, options);
        } catch (const convstate::Error& e) {
            fail(std::string("convstate: cannot open the database: ") + e.what());
        }
    }
    convstate::Database db_;
};

} // namespace

std::unique_ptr<Impl> make_convstate(const std::string& url) { return std::make_unique<Convstate>(url); }

} // namespace bench
