/* Internal interface of the HTTP server (http_server.c); the ABI functions are in osprey_abi.h. */
#ifndef OSP_HTTP_SERVER_H
#define OSP_HTTP_SERVER_H
#include "osprey_abi.h"
#endif
