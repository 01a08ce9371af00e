# Helpers shared by every module's CMakeLists.txt.

include(${CMAKE_CURRENT_LIST_DIR}/ModuleBoundaries.cmake)

# fieldsync_library(NAME SOURCES ... DEPS ...)
# One library per module folder. Its DEPS are the dependency graph, checked
# by the build (ModuleBoundaries.cmake): a module includes only the headers
# of what it links.
function(fieldsync_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${FIELDSYNC_WARNING_FLAGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  fieldsync_record_module(${name})
endfunction()

# fieldsync_executable(NAME SOURCES ... DEPS ...)
function(fieldsync_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${FIELDSYNC_WARNING_FLAGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  fieldsync_record_module(${name})
endfunction()

# fieldsync_add_test(NAME SOURCES ... DEPS ... [LABELS ...])
# A GoogleTest binary whose tests are discovered by ctest at test time.
# FIELDSYNC_SOURCE_DIR and FIELDSYNC_VECTORS_DIR reach the test as
# environment variables so that it finds testdata and ../shared/vectors.
function(fieldsync_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${FIELDSYNC_WARNING_FLAGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} fieldsync_testing GTest::gtest GTest::gmock GTest::gtest_main)
  if(FIELDSYNC_TSAN)
    # absl::Mutex made visible to ThreadSanitizer (see the file).
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/testing/tsan_absl_mutex.cc)
    target_link_libraries(${name} PRIVATE ${CMAKE_DL_LIBS})
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 60
    PROPERTIES
      ENVIRONMENT "FIELDSYNC_SOURCE_DIR=${PROJECT_SOURCE_DIR};FIELDSYNC_VECTORS_DIR=${FIELDSYNC_VECTORS_DIR};FIELDSYNC_BINARY_DIR=${PROJECT_BINARY_DIR}"
      LABELS "${ARG_LABELS}")
endfunction()

set(FIELDSYNC_VECTORS_DIR "${PROJECT_SOURCE_DIR}/../shared/vectors" CACHE PATH
    "Public conformance vectors (Wycheproof, RFC 9180, RFC 9162 Merkle), read at test time")
