/* The guest flow shared by both transports, and the SDK's collection entry points. */
#include <string.h>

#include "csv_internal.h"

static const char devkit_user_data[] = "user data"; /* what the devkit SDK sends */

static int transport(enum csv_method method, const struct csv_request_params *p, uint8_t *page)
{
    if (method == CSV_METHOD_IOCTL)
        return csv_ioctl_report(p->device ? p->device : CSV_DEFAULT_DEVICE, page, CSV_PAGE_LEN);
    uint64_t gpa = 0;
    int status = csv_pagemap_translate(page, &gpa);
    if (status != CSV_OK)
        return status;
    return csv_vmmcall(p->hypercall_nr ? p->hypercall_nr : CSV_HC_VM_ATTESTATION, gpa, CSV_PAGE_LEN, NULL);
}

int csv_collect(enum csv_method method, const struct csv_request_params *params, uint8_t *out,
                size_t out_len, struct csv_report_info *info, uint8_t key_out[CSV_SEALING_KEY_LEN])
{
    struct csv_request_params p = {0};
    if (params)
        p = *params;
    if (!p.user_data) {
        if (p.user_data_len)
            return csv_fail(CSV_ERR_INVALID_ARGUMENT, "user_data is NULL but user_data_len is %u", p.user_data_len);
        p.user_data = (const unsigned char *)devkit_user_data;
        p.user_data_len = sizeof(devkit_user_data) - 1;
    }
    if (method == CSV_METHOD_VMMCALL && p.ext_flags != CSV_EXT_NONE)
        return csv_fail(CSV_ERR_UNSUPPORTED, "extended (V2/V3) reports need the csv-guest driver on a CSV3 guest; "
                        "use the ioctl path");
    size_t need = p.ext_flags != CSV_EXT_NONE ? CSV_PAGE_LEN : CSV_REPORT_V1_LEN;
    if (out && out_len < need)
        return csv_fail(CSV_ERR_BUFFER_TOO_SMALL, "report buffer is %zu bytes; at least %zu are needed", out_len, need);

    uint8_t mnonce[CSV_MNONCE_LEN];
    int status = p.mnonce ? (memcpy(mnonce, p.mnonce, sizeof(mnonce)), CSV_OK) : csv_random(mnonce, sizeof(mnonce));
    if (status != CSV_OK)
        return status;

    uint8_t *page = NULL;
    status = csv_page_alloc(&page);
    if (status != CSV_OK)
        return status;

    const struct csv_layout *layout = NULL;
    status = csv_build_request(page, p.user_data, p.user_data_len, mnonce, p.ext_flags);
    if (status == CSV_OK)
        status = transport(method, &p, page);
    if (status == CSV_OK)
        status = csv_check_response(page, CSV_PAGE_LEN, mnonce, p.ext_flags != CSV_EXT_NONE, &layout);
    if (status == CSV_OK) {
        if (key_out)
            memcpy(key_out, page + layout->key_off, CSV_SEALING_KEY_LEN);
        csv_blank_sealing_key(page, layout);
        size_t report_len = layout->version == 1 ? CSV_REPORT_V1_LEN : CSV_PAGE_LEN;
        if (out)
            memcpy(out, page, report_len);
        if (info) {
            info->report_len = (unsigned int)report_len;
            info->version = layout->version;
            memcpy(info->mnonce, mnonce, sizeof(mnonce));
        }
    }
    csv_page_free(page);
    return status;
}

static int get_key(enum csv_method method, unsigned char *key_buf, unsigned int buf_len,
                   const struct csv_request_params *params)
{
    if (!key_buf || buf_len < CSV_SEALING_KEY_LEN)
        return csv_fail(key_buf ? CSV_ERR_BUFFER_TOO_SMALL : CSV_ERR_INVALID_ARGUMENT,
                        "the sealing-key buffer must hold at least 32 bytes");
    return csv_collect(method, params, NULL, 0, NULL, key_buf);
}

static int get_report(enum csv_method method, unsigned char *buf, unsigned int len,
                      const struct csv_request_params *params, struct csv_report_info *info)
{
    if (!buf)
        return csv_fail(CSV_ERR_INVALID_ARGUMENT, "the report buffer is NULL");
    return csv_collect(method, params, buf, len, info, NULL);
}

int vmmcall_get_attestation_report(unsigned char *report_buf, unsigned int buf_len)
{
    return get_report(CSV_METHOD_VMMCALL, report_buf, buf_len, NULL, NULL);
}

int ioctl_get_attestation_report(unsigned char *report_buf, unsigned int buf_len)
{
    return get_report(CSV_METHOD_IOCTL, report_buf, buf_len, NULL, NULL);
}

int vmmcall_get_attestation_report_ex(unsigned char *report_buf, unsigned int buf_len,
                                      const struct csv_request_params *params, struct csv_report_info *info)
{
    return get_report(CSV_METHOD_VMMCALL, report_buf, buf_len, params, info);
}

int ioctl_get_attestation_report_ex(unsigned char *report_buf, unsigned int buf_len,
                                    const struct csv_request_params *params, struct csv_report_info *info)
{
    return get_report(CSV_METHOD_IOCTL, report_buf, buf_len, params, info);
}

int vmmcall_get_sealing_key(unsigned char *key_buf, unsigned int buf_len)
{
    return get_key(CSV_METHOD_VMMCALL, key_buf, buf_len, NULL);
}

int ioctl_get_sealing_key(unsigned char *key_buf, unsigned int buf_len)
{
    return get_key(CSV_METHOD_IOCTL, key_buf, buf_len, NULL);
}

int vmmcall_get_sealing_key_ex(unsigned char *key_buf, unsigned int buf_len, const struct csv_request_params *params)
{
    return get_key(CSV_METHOD_VMMCALL, key_buf, buf_len, params);
}

int ioctl_get_sealing_key_ex(unsigned char *key_buf, unsigned int buf_len, const struct csv_request_params *params)
{
    return get_key(CSV_METHOD_IOCTL, key_buf, buf_len, params);
}
