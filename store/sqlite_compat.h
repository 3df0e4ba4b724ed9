/*
** sqlite_compat.h -- how store/ files reach SQLite. In the library they call
** libsqlite3 directly; compiled into the loadable extension
** (TAKHIN_SQLITE_EXTENSION) the same calls go through the host's
** sqlite3_api table, so the process holds one copy of SQLite (two copies
** break SQLite's POSIX file locking).
*/
#ifndef TAKHIN_SQLITE_COMPAT_H
#define TAKHIN_SQLITE_COMPAT_H

#ifdef TAKHIN_SQLITE_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#else
#include <sqlite3.h>
#endif

#endif
