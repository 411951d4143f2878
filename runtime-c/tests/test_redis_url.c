/*
 * redis:// and rediss:// URL parsing for websocketServerUseCluster (redis_conn.c): defaults,
 * user and password (percent-encoded, the last '@' ends them), IPv6 literals, database numbers,
 * and every malformed form answered with a reason instead of a guess.
 */
#include "redis_conn.h"
#include "check.h"

#include <string.h>

static osp_redis_url parsed(const char *url, int *ok, char *err, size_t errlen) {
    osp_redis_url u;
    *ok = osp_redis_url_parse(url, &u, err, errlen);
    return u;
}

int main(void) {
    char err[300];
    int ok;
    osp_redis_url u;

    u = parsed("redis://127.0.0.1", &ok, err, sizeof err);
    CHECK(ok && !u.tls && strcmp(u.host, "127.0.0.1") == 0 && u.port == 6379 && u.db == 0 && u.host_is_ip,
          "defaults: %s", err);
    CHECK(u.user[0] == '\0' && u.password[0] == '\0', "no credentials");

    u = parsed("rediss://cache.example:6380/3", &ok, err, sizeof err);
    CHECK(ok && u.tls && strcmp(u.host, "cache.example") == 0 && u.port == 6380 && u.db == 3 && !u.host_is_ip,
          "rediss with port and db: %s", err);

    u = parsed("redis://:s3cret@10.0.0.5:7000/0", &ok, err, sizeof err);
    CHECK(ok && u.user[0] == '\0' && strcmp(u.password, "s3cret") == 0 && u.port == 7000, "password only");

    u = parsed("redis://app:p%40ss%3Aword@host", &ok, err, sizeof err);
    CHECK(ok && strcmp(u.user, "app") == 0 && strcmp(u.password, "p@ss:word") == 0 && strcmp(u.host, "host") == 0,
          "percent-encoded user and password: user=%s password=%s", u.user, u.password);

    u = parsed("redis://tok@en@host:1", &ok, err, sizeof err);
    CHECK(ok && strcmp(u.password, "tok@en") == 0 && strcmp(u.host, "host") == 0, "the last @ ends the credentials");

    u = parsed("redis://[::1]:6390/2", &ok, err, sizeof err);
    CHECK(ok && strcmp(u.host, "::1") == 0 && u.port == 6390 && u.db == 2 && u.host_is_ip, "IPv6 literal");
    char address[300];
    osp_redis_url_address(&u, address, sizeof address);
    CHECK(strcmp(address, "[::1]:6390") == 0, "IPv6 address in messages: %s", address);

    u = parsed("redis://host/", &ok, err, sizeof err);
    CHECK(ok && u.db == 0, "a trailing slash is database 0");

    /* Refused, with a reason. */
    parsed("http://host:6379", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "is not a Redis URL"), "scheme: %s", err);
    parsed("redis://", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "has no valid host"), "no host: %s", err);
    parsed("redis://host:0", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "port of the Redis URL must be 1"), "port 0: %s", err);
    parsed("redis://host:65536", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "port"), "port 65536: %s", err);
    parsed("redis://host:", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "port"), "empty port: %s", err);
    parsed("redis://host:12ab", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "port"), "port with letters: %s", err);
    parsed("redis://host/one", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "database of the Redis URL must be a number"), "db: %s", err);
    parsed("redis://[::1:6379", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "no closing ']'"), "IPv6 without ]: %s", err);
    parsed("redis://:bad%zzpass@host", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "malformed"), "bad percent escape: %s", err);
    parsed("redis://:nul%00@host", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "malformed"), "an encoded NUL is refused: %s", err);
    parsed("redis://:trunc%4@host", &ok, err, sizeof err);
    CHECK(!ok && check_contains(err, "malformed"), "a truncated escape: %s", err);

    /* The password is wiped by osp_redis_url_clear. */
    u = parsed("redis://:wipe-me@host", &ok, err, sizeof err);
    osp_redis_url_clear(&u);
    CHECK(u.password[0] == '\0' && u.host[0] == '\0', "cleared");

    return check_summary("redis URL");
}
