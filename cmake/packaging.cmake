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
# from what the binaries link; the extension itself links no libsqlite3 (it
# runs inside the host's), so the shell or Python that loads it is a Suggests.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "sqlite3, python3")
include(CPack)
