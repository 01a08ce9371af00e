cmake_minimum_required(VERSION 3.25)
# Runs the module boundary check with planted files or links and checks its
# verdict: cmake -DCHECK=... -DMANIFEST=... -DSOURCE_DIR=... -DPLANT=...
# -DPLANT_LINK=... -DEXPECT=refused|accepted [-DMATCH=regex] -P expect.cmake
execute_process(
  COMMAND ${CMAKE_COMMAND} -DMANIFEST=${MANIFEST} -DSOURCE_DIR=${SOURCE_DIR}
    "-DPLANT=${PLANT}" "-DPLANT_LINK=${PLANT_LINK}" -P ${CHECK}
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
message("${all}")
if(EXPECT STREQUAL "refused")
  if(result EQUAL 0)
    message(FATAL_ERROR "the check accepted what it must refuse")
  endif()
  if(DEFINED MATCH AND NOT all MATCHES "${MATCH}")
    message(FATAL_ERROR "the refusal does not say /${MATCH}/")
  endif()
else()
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "the check refused what it must accept")
  endif()
endif()
