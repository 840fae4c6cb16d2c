// A child process for the multi-process tests:
//   worker migrate URL
//   worker append URL USER CONVERSATION COUNT TAG     appends "TAG-0" … "TAG-(COUNT-1)"
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <convstate/convstate.hpp>

int main(int argc, char** argv) try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "migrate" && argc == 3) {
        convstate::Database::open(argv[2]);
        return 0;
    }
    if (cmd == "append" && argc == 7) {
        convstate::DatabaseOptions options;
        options.pool_size = 1;
        convstate::Database db = convstate::Database::open(argv[2], options);
        convstate::MessageRepository messages(db);
        const int count = std::atoi(argv[5]);
        for (int i = 0; i < count; ++i)
            messages.append(argv[3], argv[4],
                            {.role = convstate::Role::user, .content = std::string(argv[6]) + "-" + std::to_string(i)});
        return 0;
    }
    std::fprintf(stderr, "usage: worker migrate URL | worker append URL USER CONV COUNT TAG\n");
    return 2;
} catch (const std::exception& e) {
    std::fprintf(stderr, "worker: %s\n", e.what());
    return 1;
}
