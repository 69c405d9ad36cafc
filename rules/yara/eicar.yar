/*
    EICAR anti-malware test file. Used to check that the scanning pipeline raises alerts end to end;
    a hit means a test file, not malware.
*/

rule EICAR_Test_File : test
{
    meta:
        author = "socctl"
        description = "EICAR anti-malware test file (68-byte string at offset 0, whole file at most 128 bytes)"
        severity = "informational"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
        date = "2025-01-01"

    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

    condition:
        $eicar at 0 and filesize <= 128
}
