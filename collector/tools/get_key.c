#include "collect_tool.h"

int main(int argc, char **argv)
{
    return collect_tool_main(argc, argv, "get-key", TRANSPORT_VMMCALL, 1);
}
