#pragma once
// Deterministic agents for the tests and the worker.

#include <string>

#include <convstate/chat_orchestrator.hpp>

namespace cstest {

/** Replies "echo: <last user message>"; every `tool_every`-th turn (by the user message's seq)
 *  it first calls a "lookup" tool, so the turn stores an assistant tool-call message and its
 *  tool result before the reply. */
inline convstate::AgentReply echo_agent(const convstate::AgentInput& in, int tool_every = 3) {
    const convstate::Message& last = in.history.back();
    convstate::AgentReply reply;
    reply.content = "echo: " + last.content;
    if (tool_every > 0 && last.seq % tool_every == 0) {
        convstate::Message call;
        call.role = convstate::Role::assistant;
        call.tool_calls = {{.id = "call_" + std::to_string(last.seq), .type = "function", .name = "lookup",
                            .arguments = R"({"q":"x"})"}};
        convstate::Message result;
        result.role = convstate::Role::tool;
        result.tool_call_id = call.tool_calls[0].id;
        result.content = "found";
        reply.intermediate = {call, result};
    }
    return reply;
}

} // namespace cstest
