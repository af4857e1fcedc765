# simul_add_integration: turns a folder of .c files into an integration library (libsimul-<name>,
# static and shared), its pkg-config module (simul-<name>) and its CMake component (simul::<name>).
# The idea: an integration is a user of libsimul like any other, so it sees only include/ (the
# public headers) and links the shared libsimul, whose internal symbols are hidden.
#
#   simul_add_integration(NAME tls
#     [SOURCES a.c ...]            default: every .c in the calling folder
#     [HEADER path/simul/tls.h]    default: include/simul/<NAME>.h
#     [DEPENDS OpenSSL::SSL ...]   imported targets, linked PRIVATE; the library is built only
#                                  when every one of them exists (find it first, QUIET)
#     [DEPENDENCY "OpenSSL 3 (Debian: libssl-dev)"]   named in the status message when missing
#     [CONFIG_CODE "find_package(OpenSSL 3 QUIET)"]   how a consumer's find_package(simul
#                                  COMPONENTS <NAME>) finds DEPENDS again (run in the component file)
#     [PKG_REQUIRES openssl ...]   pkg-config modules: Requires.private (cflags always, libs with
#                                  --static: the shared library already carries them)
#     [PKG_REQUIRES_PUBLIC ...]    pkg-config modules whose types show in the public header
#     [INSTALL_COMPONENT name]     install under this component, left out of a plain install
#                                  (EXCLUDE_FROM_ALL): the test-only sample uses it)
#
# An empty slot (no .c yet) or a missing dependency builds nothing and says so: no stub library.
# Rules enforced here, at configure time:
# - the target's include path is include/ (and the folder of HEADER's simul/ dir), never src/;
#   a quoted #include that climbs out of the folder ("../", an absolute path) is an error;
# - the shared library links libsimul's shared library with --no-undefined, so a call to an
#   internal simul__ symbol (hidden there) fails the link.

include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Every integration built, for the summary and for tests.
set_property(GLOBAL PROPERTY SIMUL_INTEGRATIONS_BUILT "")

function(simul_add_integration)
  cmake_parse_arguments(PARSE_ARGV 0 A "" "NAME;HEADER;DEPENDENCY;CONFIG_CODE;INSTALL_COMPONENT"
                        "SOURCES;DEPENDS;PKG_REQUIRES;PKG_REQUIRES_PUBLIC")
  if(NOT A_NAME MATCHES "^[a-z][a-z0-9]*$")
    message(FATAL_ERROR "simul_add_integration: NAME must be lower-case letters and digits")
  endif()
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "simul_add_integration(${A_NAME}): unknown arguments ${A_UNPARSED_ARGUMENTS}")
  endif()
  set(name ${A_NAME})
  set(dir ${CMAKE_CURRENT_SOURCE_DIR})

  if(NOT A_SOURCES)
    file(GLOB A_SOURCES CONFIGURE_DEPENDS ${dir}/*.c)
    list(SORT A_SOURCES)
  endif()
  if(NOT A_SOURCES)
    message(STATUS "simul-${name}: slot empty (no .c in ${dir}): nothing built")
    return()
  endif()
  set(missing "")
  foreach(dep IN LISTS A_DEPENDS)
    if(NOT TARGET ${dep})
      list(APPEND missing ${dep})
    endif()
  endforeach()
  if(missing)
    message(STATUS "simul-${name}: dependency missing (${missing}; install ${A_DEPENDENCY}): "
                   "libsimul-${name} not built")
    return()
  endif()

  if(NOT A_HEADER)
    set(A_HEADER ${PROJECT_SOURCE_DIR}/include/simul/${name}.h)
  endif()
  if(NOT EXISTS ${A_HEADER})
    message(FATAL_ERROR "simul-${name}: its public header ${A_HEADER} is missing")
  endif()
  get_filename_component(header_simul_dir ${A_HEADER} DIRECTORY)
  get_filename_component(header_root ${header_simul_dir} DIRECTORY)

  # Public headers only: no include path into src/, no quoted include climbing out of the folder.
  get_directory_property(dir_includes INCLUDE_DIRECTORIES)
  foreach(inc IN LISTS dir_includes)
    if(inc MATCHES "^${PROJECT_SOURCE_DIR}/src(/|$)")
      message(FATAL_ERROR "simul-${name}: include_directories(${inc}): an integration sees "
                          "include/ only (public API)")
    endif()
  endforeach()
  file(GLOB own_headers ${dir}/*.h)
  foreach(f IN LISTS A_SOURCES own_headers)
    file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" inc "${line}")
      if(inc MATCHES "(^|/)\\.\\.(/|$)" OR IS_ABSOLUTE "${inc}")
        message(FATAL_ERROR "simul-${name}: ${f} includes \"${inc}\": an integration includes "
                            "its own folder's headers and the public <simul/...> ones only")
      endif()
    endforeach()
  endforeach()

  set(lib simul_${name})
  add_library(${lib}_objects OBJECT ${A_SOURCES})
  set_target_properties(${lib}_objects PROPERTIES POSITION_INDEPENDENT_CODE ON
                        C_VISIBILITY_PRESET hidden)
  set(public_inc $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
  if(NOT header_root STREQUAL "${PROJECT_SOURCE_DIR}/include")
    list(APPEND public_inc $<BUILD_INTERFACE:${header_root}>)
  endif()
  # The objects get the public include path from here only (not from linking libsimul), so the
  # check below can see the whole of it.
  target_include_directories(${lib}_objects PRIVATE ${public_inc})
  target_link_libraries(${lib}_objects PRIVATE ${A_DEPENDS})
  if(SIMUL_CORO_UCONTEXT)
    target_compile_definitions(${lib}_objects PRIVATE SIMUL_CORO_UCONTEXT=1)
  endif()

  add_library(${lib}_static STATIC $<TARGET_OBJECTS:${lib}_objects>)
  add_library(${lib}_shared SHARED $<TARGET_OBJECTS:${lib}_objects>)
  set_target_properties(${lib}_static PROPERTIES OUTPUT_NAME simul-${name} EXPORT_NAME ${name}_static)
  set_target_properties(${lib}_shared PROPERTIES OUTPUT_NAME simul-${name} EXPORT_NAME ${name}_shared
    VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  foreach(t ${lib}_static ${lib}_shared)
    target_include_directories(${t} PUBLIC ${public_inc}
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    target_link_libraries(${t} PRIVATE ${A_DEPENDS})
  endforeach()
  # The shared one on the shared libsimul: the internal symbols are hidden there, so a wrong-way
  # call fails this link. The static one on the static libsimul, as a consumer pairs them.
  target_link_libraries(${lib}_shared PUBLIC simul_shared)
  if(NOT SIMUL_SANITIZE AND NOT SIMUL_BUILD_FUZZ) # (clang leaves sanitizer runtimes undefined)
    target_link_options(${lib}_shared PRIVATE LINKER:--no-undefined)
  endif()
  target_link_libraries(${lib}_static PUBLIC simul_static)
  add_library(simul::${name} ALIAS ${lib}_shared)
  add_library(simul::${name}_static ALIAS ${lib}_static)
  # (A deferred call's arguments are expanded when it runs: pass them as literals.)
  cmake_language(EVAL CODE "cmake_language(DEFER DIRECTORY [[${PROJECT_SOURCE_DIR}]] CALL
                 _simul_integration_check_includes [[${lib}_objects]] [[${name}]])")
  set_property(GLOBAL APPEND PROPERTY SIMUL_INTEGRATIONS_BUILT ${name})

  # ---- install: library, header, pkg-config module, CMake component ----
  set(comp_args "")
  if(A_INSTALL_COMPONENT)
    set(comp_args COMPONENT ${A_INSTALL_COMPONENT} EXCLUDE_FROM_ALL)
  endif()
  set(cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/simul)
  install(TARGETS ${lib}_static ${lib}_shared EXPORT simul-${name}Targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} ${comp_args}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ${comp_args}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} ${comp_args})
  install(FILES ${A_HEADER} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/simul ${comp_args})
  install(EXPORT simul-${name}Targets NAMESPACE simul:: DESTINATION ${cmakedir} ${comp_args})

  set(SIMUL_COMPONENT_CONFIG_CODE "${A_CONFIG_CODE}")
  set(SIMUL_COMPONENT ${name})
  set(SIMUL_COMPONENT_DEPENDS ${A_DEPENDS})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/simulComponent.cmake.in
                 ${CMAKE_CURRENT_BINARY_DIR}/simul-${name}Component.cmake @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/simul-${name}Component.cmake DESTINATION ${cmakedir}
          ${comp_args})

  set(SIMUL_PC_NAME simul-${name})
  string(REPLACE ";" ", " SIMUL_PC_REQUIRES "simul = ${PROJECT_VERSION};${A_PKG_REQUIRES_PUBLIC}")
  string(REGEX REPLACE ", $" "" SIMUL_PC_REQUIRES "${SIMUL_PC_REQUIRES}")
  set(SIMUL_PC_REQUIRES_PRIVATE_LINE "")
  if(A_PKG_REQUIRES)
    string(REPLACE ";" ", " reqs "${A_PKG_REQUIRES}")
    set(SIMUL_PC_REQUIRES_PRIVATE_LINE "Requires.private: ${reqs}")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/simul-integration.pc.in
                 ${CMAKE_CURRENT_BINARY_DIR}/simul-${name}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/simul-${name}.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig ${comp_args})
  message(STATUS "simul-${name}: libsimul-${name} (static and shared), pkg-config simul-${name}, "
                 "CMake simul::${name}")
endfunction()

# Run once the whole tree is configured: nothing added later (target_include_directories in the
# slot's CMakeLists.txt after the call) may open src/ to an integration either.
function(_simul_integration_check_includes target name)
  get_target_property(incs ${target} INCLUDE_DIRECTORIES)
  foreach(inc IN LISTS incs)
    if(inc MATCHES "${PROJECT_SOURCE_DIR}/src(/|$|>)")
      message(FATAL_ERROR "simul-${name}: include path ${inc}: an integration sees include/ "
                          "only (public API)")
    endif()
  endforeach()
endfunction()
