# moat_library(NAME SRCS a.cc b.cc DEPS dep1 dep2)
#   A static library of one subsystem, in a folder under src/. DEPS are the libraries whose
#   headers and code it really uses (PUBLIC: they come with it).
#
#   Headers are included as "folder/file.h". Instead of one include root for all of src/, each
#   library gets a root of its own under the build tree that holds only its folder (a symbolic
#   link), so a target can include only the headers of libraries it links, directly or through
#   their DEPS. include/moat (the public interfaces) comes with moat_interfaces. Which folder may
#   include which is checked before anything compiles (moat_layering, cmake/layers.txt).
function(moat_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_link_libraries(${name} PUBLIC moat_interfaces ${ARG_DEPS})
  add_dependencies(${name} moat_layering)
  file(RELATIVE_PATH folder ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
  if(NOT folder MATCHES "^\\.\\.")  # libraries outside src/ set their own include root
    set(root ${PROJECT_BINARY_DIR}/include-roots/${name})
    get_filename_component(parent ${root}/${folder} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(REMOVE ${root}/${folder})
    file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR} ${root}/${folder} SYMBOLIC)
    target_include_directories(${name} PUBLIC ${root})
  endif()
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
