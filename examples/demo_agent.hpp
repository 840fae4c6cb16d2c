// A deterministic demo agent with two real local tools (a calculator and a UTC clock), so the
// chat demo shows tool calls and tool results without any model or network.
#pragma once

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>
#include <string_view>

#include <convstate/convstate.hpp>

namespace demo {

// expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
// factor := number | '(' expression ')' | '-' factor
// The input is untrusted (it comes from the user's message): its length and its nesting (each
// '(' and each unary '-' is one level of recursion) are bounded, so that no expression can
// exhaust the stack or the CPU; past a bound, evaluate throws like for any other bad input.
class Calculator {
public:
    static constexpr std::size_t max_length = 4096;
    static constexpr int max_depth = 64;

    static double evaluate(const std::string& text) {
        if (text.size() > max_length)
            throw std::invalid_argument("expression longer than " + std::to_string(max_length) + " characters");
        Calculator c{text};
        const double v = c.expression();
        c.skip();
        if (c.pos_ != text.size()) throw std::invalid_argument("unexpected '" + text.substr(c.pos_, 1) + "'");
        return v;
    }

private:
    explicit Calculator(const std::string& t) : text_(t) {}
    void skip() { while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_; }
    bool eat(char ch) {
        skip();
        if (pos_ < text_.size() && text_[pos_] == ch) { ++pos_; return true; }
        return false;
    }
    double expression() {
        double v = term();
        for (;;) {
            if (eat('+')) v += term();
            else if (eat('-')) v -= term();
            else return v;
        }
    }
    double term() {
        double v = factor();
        for (;;) {
            if (eat('*')) v *= factor();
            else if (eat('/')) {
                const double d = factor();
                if (d == 0) throw std::invalid_argument("division by zero");
                v /= d;
            } else return v;
        }
    }
    double factor() {
        if (eat('-')) {
            const Nest nest(*this);
            return -factor();
        }
        if (eat('(')) {
            const Nest nest(*this);
            const double v = expression();
            if (!eat(')')) throw std::invalid_argument("missing ')'");
            return v;
        }
        skip();
        const std::size_t start = pos_;
        while (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.')) ++pos_;
        if (start == pos_) throw std::invalid_argument("expected a number");
        return std::stod(text_.substr(start, pos_ - start));
    }
    // One level of nesting for as long as it lives.
    struct Nest {
        explicit Nest(Calculator& c) : c_(c) {
            if (c_.depth_ >= max_depth)
                throw std::invalid_argument("expression nested deeper than " + std::to_string(max_depth) + " levels");
            ++c_.depth_;
        }
        ~Nest() { --c_.depth_; }
        Nest(const Nest&) = delete;
        Nest& operator=(const Nest&) = delete;
        Calculator& c_;
    };
    const std::string& text_;
    std::size_t pos_ = 0;
    int depth_ = 0;
};

// The longest run of "0-9 + - * / ( ) . space" holding a digit and an operator.
inline std::string find_expression(const std::string& text) {
    std::string best, run;
    auto consider = [&] {
        const bool digit = run.find_first_of("0123456789") != std::string::npos;
        const bool op = run.find_first_of("+-*/") != std::string::npos;
        // Trim in one step each side (erasing the leading spaces one by one is quadratic).
        const std::size_t first = run.find_first_not_of(' ');
        if (first == std::string::npos) run.clear();
        else run = run.substr(first, run.find_last_not_of(' ') - first + 1);
        if (digit && op && run.size() > best.size()) best = run;
        run.clear();
    };
    for (char ch : text) {
        if (std::string_view("0123456789+-*/(). ").find(ch) != std::string_view::npos) run.push_back(ch);
        else consider();
    }
    consider();
    return best;
}

inline std::string format_number(double v) {
    char buf[64];
    if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
    else std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

inline std::string utc_now() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

inline std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') out.push_back('\\');
        out.push_back(ch);
    }
    return out + "\"";
}

/** The agent: one tool round when the message asks for arithmetic or the time, then a reply.
 *  It answers from the history it is given (it keeps nothing itself). */
inline convstate::AgentReply agent(const convstate::AgentInput& in) {
    using convstate::Message;
    using convstate::Role;
    const Message& said = in.history.back();
    int user_turns = 0;
    std::string previous;
    for (const Message& m : in.history)
        if (m.role == Role::user) {
            ++user_turns;
            if (&m != &said) previous = m.content;
        }

    convstate::AgentReply reply;
    auto call_tool = [&](const std::string& name, const std::string& arguments, const std::string& result) {
        Message call;
        call.role = Role::assistant;
        call.tool_calls = {{.id = "call_" + std::to_string(said.seq), .type = "function", .name = name, .arguments = arguments}};
        Message answer;
        answer.role = Role::tool;
        answer.name = name;
        answer.tool_call_id = call.tool_calls[0].id;
        answer.content = result;
        reply.intermediate = {call, answer};
    };

    std::string lower = said.content;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (const std::string expr = find_expression(said.content); !expr.empty()) {
        std::string result;
        try {
            result = format_number(Calculator::evaluate(expr));
        } catch (const std::exception& e) {
            result = std::string("error: ") + e.what();
        }
        call_tool("calculator", "{\"expression\":" + json_string(expr) + "}", result);
        reply.content = expr + " = " + result;
    } else if (lower.find("time") != std::string::npos) {
        const std::string now = utc_now();
        call_tool("clock", "{\"timezone\":\"UTC\"}", now);
        reply.content = "It is " + now + " (UTC).";
    } else if (previous.empty()) {
        reply.content = "Hello! Ask me to compute something (\"what is 6*7?\") or for the time. I remember what you say.";
    } else {
        reply.content = "You said \"" + said.content + "\". Before that you said \"" + previous + "\" (" +
                        std::to_string(user_turns) + " messages from you so far).";
    }
    return reply;
}

} // namespace demo
