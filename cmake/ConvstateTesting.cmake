# Adding tests, in one place.
#
# convstate_add_test(NAME COMMAND cmd... [TIMEOUT s] [DEPENDS test...] [WORKING_DIRECTORY dir]
#                    [ENVIRONMENT VAR=value...])
#   add_test with its properties in one call.
#
# convstate_add_url_tests(NAME COMMAND cmd... [TIMEOUT s] [ENVIRONMENT VAR=value...])
#   NAME.sqlite: cmd with a SQLite URL in the build tree appended;
#   NAME.postgres: cmd with $CONVSTATE_TEST_PG_URL appended when the test runs (scripts/test.sh
#   starts a throwaway server and sets it; without it the test fails, loudly);
#   NAME.mariadb: the same with $CONVSTATE_TEST_MARIADB_URL.
function(convstate_add_test name)
    cmake_parse_arguments(PARSE_ARGV 1 _t "" "TIMEOUT;WORKING_DIRECTORY" "COMMAND;DEPENDS;ENVIRONMENT")
    if(_t_WORKING_DIRECTORY)
        add_test(NAME ${name} COMMAND ${_t_COMMAND} WORKING_DIRECTORY ${_t_WORKING_DIRECTORY})
    else()
        add_test(NAME ${name} COMMAND ${_t_COMMAND})
    endif()
    if(_t_TIMEOUT)
        set_tests_properties(${name} PROPERTIES TIMEOUT ${_t_TIMEOUT})
    endif()
    if(_t_DEPENDS)
        set_tests_properties(${name} PROPERTIES DEPENDS "${_t_DEPENDS}")
    endif()
    if(_t_ENVIRONMENT)
        set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_t_ENVIRONMENT}")
    endif()
endfunction()

function(convstate_add_url_tests name)
    cmake_parse_arguments(PARSE_ARGV 1 _t "" "TIMEOUT" "COMMAND;ENVIRONMENT")
    set(_extra)
    if(_t_TIMEOUT)
        list(APPEND _extra TIMEOUT ${_t_TIMEOUT})
    endif()
    if(_t_ENVIRONMENT)
        list(APPEND _extra ENVIRONMENT ${_t_ENVIRONMENT})
    endif()
    convstate_add_test(${name}.sqlite COMMAND ${_t_COMMAND} sqlite3://${CMAKE_CURRENT_BINARY_DIR}/${name}-test.db ${_extra})
    convstate_add_test(${name}.postgres COMMAND sh -c "exec \"$@\" \"$CONVSTATE_TEST_PG_URL\"" sh ${_t_COMMAND} ${_extra})
    convstate_add_test(${name}.mariadb COMMAND sh -c "exec \"$@\" \"$CONVSTATE_TEST_MARIADB_URL\"" sh ${_t_COMMAND} ${_extra})
endfunction()
