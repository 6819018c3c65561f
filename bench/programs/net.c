// A networking program (cf. bcc's tools/tcpconnect, tcplife): sockets, skbs,
// TCP and IP headers.
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <net/sock.h>
#include <linux/tcp.h>
#include <net/inet_sock.h>
#include <linux/ip.h>

int trace_connect(struct sock *sk)
{
	struct inet_sock *inet = inet_sk(sk);
	return inet->inet_dport + sk->sk_family;
}
