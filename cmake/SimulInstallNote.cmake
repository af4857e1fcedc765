# Run last by `cmake --install` (and so by `make install`): makes sure a program linked against
# the shared libsimul will start. The idea: the dynamic loader finds a library only in its cache
# (ldconfig) or through an rpath / LD_LIBRARY_PATH, so after installing we either refresh the
# cache (root, a directory the loader is configured to search) or say exactly what to do.
# SIMUL_INSTALL_LIBDIR is set by the install(CODE) line before this script.
if(DEFINED ENV{DESTDIR} AND NOT "$ENV{DESTDIR}" STREQUAL "")
  return() # staged for a package: its own scripts run ldconfig
endif()
set(_libdir "${CMAKE_INSTALL_PREFIX}/${SIMUL_INSTALL_LIBDIR}")
get_filename_component(_libdir "${_libdir}" REALPATH)
if(NOT EXISTS "${_libdir}/libsimul.so.0")
  return()
endif()
find_program(_ldconfig ldconfig PATHS /sbin /usr/sbin)
set(_searched FALSE)
set(_cached FALSE)
if(_ldconfig)
  # The directories the loader's configuration names ("dir: (from file:line)"), and the cache.
  execute_process(COMMAND ${_ldconfig} -v -N OUTPUT_VARIABLE _dirs ERROR_QUIET RESULT_VARIABLE _rc)
  string(REGEX MATCHALL "(^|\n)/[^:\n]*:" _dirs "${_dirs}")
  foreach(_d IN LISTS _dirs)
    string(REGEX REPLACE "^\n?(.*):$" "\\1" _d "${_d}")
    get_filename_component(_d "${_d}" REALPATH)
    if(_d STREQUAL _libdir)
      set(_searched TRUE)
    endif()
  endforeach()
  execute_process(COMMAND ${_ldconfig} -p OUTPUT_VARIABLE _cache ERROR_QUIET)
  string(FIND "${_cache}" "${_libdir}/libsimul.so.0\n" _at)
  if(NOT _at EQUAL -1)
    set(_cached TRUE)
  endif()
endif()
execute_process(COMMAND id -u OUTPUT_VARIABLE _uid OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(_searched AND NOT _cached AND _uid STREQUAL "0")
  execute_process(COMMAND ${_ldconfig} RESULT_VARIABLE _rc)
  if(_rc EQUAL 0)
    message(STATUS "simul: ran ldconfig, so programs find libsimul.so.0 in ${_libdir}")
    return()
  endif()
endif()
if(_searched AND (_cached OR _uid STREQUAL "0"))
  return()
endif()
if(_searched)
  message(STATUS "simul: run `sudo ldconfig` once so the dynamic loader finds libsimul.so.0 in ${_libdir}")
else()
  message(STATUS "simul: the dynamic loader does not search ${_libdir}; a program linked with the "
                 "shared libsimul starts only with an rpath (cc app.c $(pkg-config --cflags --libs "
                 "simul) -Wl,-rpath,${_libdir}), or LD_LIBRARY_PATH=${_libdir}, or after adding "
                 "${_libdir} to a file in /etc/ld.so.conf.d/ and running ldconfig; or link the "
                 "static library (simul::simul_static, or libsimul.a)")
endif()
