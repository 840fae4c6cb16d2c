# FindSOCI: Debian's libsoci-dev ships neither a CMake config nor a .pc file.
# Provides imported targets SOCI::core, SOCI::sqlite3, SOCI::postgresql, SOCI::mysql (when found).
include(FindPackageHandleStandardArgs)

find_path(SOCI_INCLUDE_DIR soci/soci.h)
find_library(SOCI_CORE_LIBRARY NAMES soci_core)
find_library(SOCI_SQLITE3_LIBRARY NAMES soci_sqlite3)
find_library(SOCI_POSTGRESQL_LIBRARY NAMES soci_postgresql)
find_library(SOCI_MYSQL_LIBRARY NAMES soci_mysql)
# SOCI's MySQL header includes <mysql.h>: MariaDB's client library (libmariadb-dev).
find_path(SOCI_MYSQL_CLIENT_INCLUDE_DIR mysql.h PATH_SUFFIXES mariadb mysql)
find_library(SOCI_MYSQL_CLIENT_LIBRARY NAMES mariadb mysqlclient)

if(SOCI_SQLITE3_LIBRARY)
    set(SOCI_sqlite3_FOUND TRUE)
endif()
if(SOCI_POSTGRESQL_LIBRARY)
    set(SOCI_postgresql_FOUND TRUE)
endif()
if(SOCI_MYSQL_LIBRARY AND SOCI_MYSQL_CLIENT_INCLUDE_DIR AND SOCI_MYSQL_CLIENT_LIBRARY)
    set(SOCI_mysql_FOUND TRUE)
endif()

find_package_handle_standard_args(SOCI
    REQUIRED_VARS SOCI_CORE_LIBRARY SOCI_INCLUDE_DIR
    HANDLE_COMPONENTS)

if(SOCI_FOUND AND NOT TARGET SOCI::core)
    add_library(SOCI::core UNKNOWN IMPORTED)
    set_target_properties(SOCI::core PROPERTIES
        IMPORTED_LOCATION "${SOCI_CORE_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${SOCI_INCLUDE_DIR}")
    find_package(Threads REQUIRED)
    target_link_libraries(SOCI::core INTERFACE Threads::Threads ${CMAKE_DL_LIBS})
endif()

if(SOCI_SQLITE3_LIBRARY AND NOT TARGET SOCI::sqlite3)
    find_package(SQLite3 REQUIRED)
    add_library(SOCI::sqlite3 UNKNOWN IMPORTED)
    set_target_properties(SOCI::sqlite3 PROPERTIES IMPORTED_LOCATION "${SOCI_SQLITE3_LIBRARY}")
    # The backend must come before core on the link line.
    target_link_libraries(SOCI::sqlite3 INTERFACE SOCI::core SQLite::SQLite3)
endif()

if(SOCI_POSTGRESQL_LIBRARY AND NOT TARGET SOCI::postgresql)
    find_package(PostgreSQL REQUIRED)
    add_library(SOCI::postgresql UNKNOWN IMPORTED)
    set_target_properties(SOCI::postgresql PROPERTIES IMPORTED_LOCATION "${SOCI_POSTGRESQL_LIBRARY}")
    target_link_libraries(SOCI::postgresql INTERFACE SOCI::core PostgreSQL::PostgreSQL)
endif()

if(SOCI_mysql_FOUND AND NOT TARGET SOCI::mysql)
    add_library(SOCI::mysql UNKNOWN IMPORTED)
    set_target_properties(SOCI::mysql PROPERTIES IMPORTED_LOCATION "${SOCI_MYSQL_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${SOCI_MYSQL_CLIENT_INCLUDE_DIR}")
    target_link_libraries(SOCI::mysql INTERFACE SOCI::core "${SOCI_MYSQL_CLIENT_LIBRARY}")
endif()

mark_as_advanced(SOCI_INCLUDE_DIR SOCI_CORE_LIBRARY SOCI_SQLITE3_LIBRARY SOCI_POSTGRESQL_LIBRARY SOCI_MYSQL_LIBRARY
    SOCI_MYSQL_CLIENT_INCLUDE_DIR SOCI_MYSQL_CLIENT_LIBRARY)
