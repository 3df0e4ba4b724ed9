/*
** version.c -- the library's version at run time. The numbers come from
** takhin_version.h, which CMake generates from project(VERSION).
*/
#include "takhin.h"

const char *takhin_libversion(void) { return TAKHIN_VERSION; }

int takhin_libversion_number(void) { return TAKHIN_VERSION_NUMBER; }
