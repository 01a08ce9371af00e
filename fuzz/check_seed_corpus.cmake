# ctest fuzz_seed_corpus_is_current: runs GENERATOR into OUT and fails
# unless CORPUS holds exactly the seeds (per target, by name) it wrote.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${GENERATOR} ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_seed_corpus failed (${rc})")
endif()
file(GLOB_RECURSE written RELATIVE ${OUT} ${OUT}/*)
file(GLOB_RECURSE committed RELATIVE ${CORPUS} ${CORPUS}/*)
list(SORT written)
list(SORT committed)
if(NOT written STREQUAL committed)
  message(FATAL_ERROR "fuzz/corpus is not what fuzz_seed_corpus writes; regenerate it:\n"
    "  ${GENERATOR} ${CORPUS}\nwritten: ${written}\ncommitted: ${committed}")
endif()
list(LENGTH written n)
message(STATUS "fuzz/corpus: ${n} seeds, as fuzz_seed_corpus writes them")
