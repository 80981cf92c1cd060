/* Test-only shim for Wine 8 (Debian 12), which lacks bcryptprimitives.dll: Rust's std
 * (>= 1.78) gets its random bytes from ProcessPrng there and the .exe stops at start-up
 * without it. Placed next to the .exe under test, never shipped. ProcessPrng is served by
 * advapi32's SystemFunction036 (RtlGenRandom), which Wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
