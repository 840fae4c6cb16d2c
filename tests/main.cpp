#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "support.hpp"

int main(int argc, char** argv) {
    std::printf("convstate tests on backend: %s\n", cstest::backend_name());
    doctest::Context context(argc, argv);
    return context.run();
}
