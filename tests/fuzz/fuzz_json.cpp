// libFuzzer target: the JSON codec (json.hpp) in both directions.
//
// The first byte picks a decoder, the rest is its input. Whatever a decoder accepts must
// survive encode -> decode unchanged (decode(encode(x)) == x) and encode to the same text again
// (a fixed point). Whatever it refuses must be refused with InvalidArgument naming a field; any
// other exception escapes and libFuzzer reports it.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "convstate/chat_orchestrator.hpp"
#include "convstate/error.hpp"
#include "convstate/json.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& a, const std::string& b) {
    std::fprintf(stderr, "fuzz_json: %s\n  first:  %s\n  second: %s\n", what, a.c_str(), b.c_str());
    std::abort();
}

template <class Decode, class Encode>
void fixed_point(std::string_view input, Decode decode, Encode encode) {
    auto x = decode(input);
    const std::string text = encode(x);
    auto y = decode(text);
    if (!(x == y)) fail("decode(encode(x)) != x", std::string(input), text);
    const std::string again = encode(y);
    if (again != text) fail("encode is not a fixed point", text, again);
}

void decode_only(std::string_view input, int which) {
    if (which == 0) {
        const convstate::AgentReply reply = convstate::json::reply_from_json(input);
        // The parts of an accepted reply are themselves codec values.
        for (const convstate::Message& m : reply.intermediate) {
            const std::string text = convstate::json::to_json(m);
            if (!(convstate::json::message_from_json(text) == m)) fail("intermediate message", std::string(input), text);
        }
        const std::string calls = convstate::json::tool_calls_to_json(reply.tool_calls);
        if (!(convstate::json::tool_calls_from_json(calls) == reply.tool_calls))
            fail("reply tool_calls", std::string(input), calls);
    } else {
        convstate::json::usage_from_json(input);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    namespace json = convstate::json;
    try {
        switch (data[0] % 6) {
        case 0:
            fixed_point(input, json::message_from_json, [](const convstate::Message& m) { return json::to_json(m); });
            break;
        case 1:
            fixed_point(input, json::messages_from_json,
                        [](const std::vector<convstate::Message>& m) { return json::to_json(m); });
            break;
        case 2:
            fixed_point(input, json::conversation_from_json,
                        [](const convstate::Conversation& c) { return json::to_json(c); });
            break;
        case 3: fixed_point(input, json::tool_calls_from_json, json::tool_calls_to_json); break;
        case 4: decode_only(input, 0); break;
        default: decode_only(input, 1); break;
        }
    } catch (const convstate::InvalidArgument& e) {
        if (e.field().empty()) fail("InvalidArgument without a field", std::string(input), e.what());
    }
    return 0;
}
