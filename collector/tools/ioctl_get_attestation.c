#include "collect_tool.h"

int main(int argc, char **argv)
{
    return collect_tool_main(argc, argv, "ioctl-get-attestation", TRANSPORT_IOCTL, 0);
}
