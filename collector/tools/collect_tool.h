#ifndef CSV_COLLECT_TOOL_H
#define CSV_COLLECT_TOOL_H

enum tool_transport { TRANSPORT_VMMCALL, TRANSPORT_IOCTL };

/* want_key = 0: write report.cert and nonce.bin; 1: print (or --out) the sealing key. */
int collect_tool_main(int argc, char **argv, const char *name, enum tool_transport transport, int want_key);

#endif
