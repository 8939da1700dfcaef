# Refuses a compiler that miscompiles what prevue's code is made of.
#
# GCC 12.2 (Debian 12's g++) frees a wild pointer when a temporary
# std::string made by ?: sits in the arguments of a co_await'ed call; the
# proxy aborted on the first visitor of a building preview because of it.
# Such expressions are everywhere in coroutine code, so rather than police
# each line, the check compiles and runs the pattern with the flags of this
# build and stops the configuration when the result is wrong. scripts/build.sh
# picks clang-16, which passes.
foreach(_prevue_opt -O0 -O2)
  try_run(PREVUE_COROUTINE_RUN${_prevue_opt} PREVUE_COROUTINE_COMPILED${_prevue_opt}
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/checks/coroutine_temporary.cc
    CMAKE_FLAGS "-DCMAKE_CXX_FLAGS=${CMAKE_CXX_FLAGS} ${_prevue_opt}"
    CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON
    COMPILE_OUTPUT_VARIABLE _prevue_coroutine_compile_output
    RUN_OUTPUT_VARIABLE _prevue_coroutine_run_output)
  if(NOT PREVUE_COROUTINE_COMPILED${_prevue_opt})
    message(FATAL_ERROR "The C++ compiler (${CMAKE_CXX_COMPILER}) cannot compile C++20 coroutines:\n${_prevue_coroutine_compile_output}")
  endif()
  if(NOT PREVUE_COROUTINE_RUN${_prevue_opt} EQUAL 0)
    message(FATAL_ERROR
      "The C++ compiler ${CMAKE_CXX_COMPILER} (${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}) miscompiles "
      "coroutines at ${_prevue_opt} (cmake/checks/coroutine_temporary.cc exited ${PREVUE_COROUTINE_RUN${_prevue_opt}}: "
      "${_prevue_coroutine_run_output}). GCC 12.2 is known to. Configure with clang 16 instead: "
      "CC=clang-16 CXX=clang++-16 cmake ...  (scripts/build.sh does this; scripts/setup.sh installs it)")
  endif()
endforeach()
message(STATUS "Coroutine temporaries: compiled correctly by ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
