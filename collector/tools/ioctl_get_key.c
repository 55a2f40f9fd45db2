#include "collect_tool.h"

int main(int argc, char **argv)
{
    return collect_tool_main(argc, argv, "ioctl-get-key", TRANSPORT_IOCTL, 1);
}
