/*
 * netaddr.h - is an address on the public internet?
 *
 * Image URLs in chat requests are downloaded by the gateway.  Unchecked,
 * that lets anyone with a client token make the gateway connect to its own
 * loopback, the LAN or a cloud metadata service (SSRF) and learn from the
 * error what answered.  The downloader refuses, at connect time (after DNS,
 * so a name that resolves to 127.0.0.1 is caught too), every address that is
 * not public.
 */
#ifndef GB_UPSTREAM_NETADDR_H
#define GB_UPSTREAM_NETADDR_H

#include <sys/socket.h>

/* 1 when sa (AF_INET or AF_INET6) is a public unicast address; 0 for
 * loopback, private (RFC 1918, unique local), shared (100.64/10),
 * link-local (169.254/16, fe80::/10: cloud metadata lives there),
 * unspecified, multicast, broadcast, reserved and documentation ranges,
 * and for any other family.  IPv4-mapped and NAT64 IPv6 addresses are
 * judged by the IPv4 address they carry. */
int gb_addr_public(const struct sockaddr *sa);

#endif
