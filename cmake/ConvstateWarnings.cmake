# Warnings, in one place. convstate_warnings(TARGET [STRICT] [ERROR]):
#   -Wall -Wextra -Wpedantic for every target (C and C++); C++ designated initializers that
#   skip members are fine here (-Wno-missing-field-initializers);
#   STRICT adds -Wshadow -Wconversion (the library itself); ERROR makes warnings errors.
function(convstate_warnings target)
    cmake_parse_arguments(PARSE_ARGV 1 _w "STRICT;ERROR" "" "")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic
        $<$<COMPILE_LANGUAGE:CXX>:-Wno-missing-field-initializers>)
    if(_w_STRICT)
        target_compile_options(${target} PRIVATE -Wshadow -Wconversion -Wno-sign-conversion)
    endif()
    if(_w_ERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
