# moat_library(NAME SRCS a.cc b.cc DEPS dep1 dep2)
#   A static library of one subsystem.
function(moat_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# moat_test(NAME SRCS a_test.cc DEPS lib1 [LABELS unit|integration] [TIMEOUT s])
#   A GoogleTest binary registered with CTest (one CTest entry per binary, so the
#   suite stays quick to enumerate on a 2-core machine).
function(moat_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "MOAT_BUILD_DIR=${PROJECT_BINARY_DIR};MOAT_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
