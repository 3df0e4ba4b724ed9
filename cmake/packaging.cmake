# packaging.cmake -- `cpack -G DEB` in the build folder makes the Debian
# package libtakhin: the shared and static library, the header, takhin.pc,
# the SQLite extension takhin.so and takhin-bench, installed under /usr so
# that `.load takhin` and load_extension("takhin") find the extension
# (/usr/lib is a folder the dynamic loader searches by default).
# tests/deb_test.sh builds, installs, uses and removes it.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libtakhin)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "takhin")
set(CPACK_PACKAGE_CONTACT "takhin maintainers <takhin@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "embedded, SQLite-indexed, Kafka-style log store (library, SQLite extension, benchmark)")
set(CPACK_PACKAGE_DESCRIPTION
    "takhin stores topics and partitions of append-only logs as segment files in Kafka's
RecordBatch v2 format, indexed by a SQLite catalog. This package holds the C
library (libtakhin.so, libtakhin.a, takhin.h, takhin.pc), the SQLite extension
takhin.so (load it with .load takhin in the sqlite3 shell) and takhin-bench.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
# dpkg-shlibdeps derives Depends (libc6, libsqlite3-0, libzstd1, libjansson4)
# from what the binaries link. The extension links no libsqlite3 (it runs
# inside the host's) and needs 3.38 (sqlite3_vtab_in) from it, which no
# symbol shows: that one is stated. The shell or Python that loads it is a
# Suggests. Without dpkg-shlibdeps (package dpkg-dev) the list is written out.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libsqlite3-0 (>= 3.38.0)")
find_program(TAKHIN_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TAKHIN_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libc6, libzstd1, libjansson4")
endif()
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "sqlite3, python3")
include(CPack)
