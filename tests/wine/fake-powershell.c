/* Test-only fake powershell.exe for the Wine smoke run: appends its command line to
 * calls.log and prints status.json, both next to the executable, and exits 0. The agent's
 * Defender backend reads Get-MpComputerStatus output through it. */
#include <stdio.h>
#include <string.h>
#include <windows.h>

int main(void)
{
    char dir[MAX_PATH], path[MAX_PATH + 32], buf[4096];
    DWORD n = GetModuleFileNameA(NULL, dir, MAX_PATH);
    if (n == 0 || n >= MAX_PATH)
        return 90;
    char *slash = strrchr(dir, '\\');
    if (slash == NULL)
        return 91;
    *slash = '\0';

    snprintf(path, sizeof path, "%s\\calls.log", dir);
    FILE *log = fopen(path, "a");
    if (log != NULL) {
        fprintf(log, "%s\n", GetCommandLineA());
        fclose(log);
    }

    snprintf(path, sizeof path, "%s\\status.json", dir);
    FILE *in = fopen(path, "rb");
    if (in == NULL)
        return 92;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, got, stdout);
    fclose(in);
    return 0;
}
