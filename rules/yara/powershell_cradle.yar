/*
    PowerShell download cradles: fetch a script over HTTP and run it in memory.
*/

rule PowerShell_Download_Cradle : powershell execution
{
    meta:
        author = "socctl"
        description = "PowerShell downloading content (WebClient, Invoke-WebRequest, BITS) and executing it with Invoke-Expression"
        severity = "high"
        date = "2025-01-01"

    strings:
        $dl1 = "DownloadString" nocase ascii wide
        $dl2 = "DownloadData" nocase ascii wide
        $dl3 = /\b(Invoke-WebRequest|Invoke-RestMethod|iwr|irm)\b/ nocase ascii wide
        $dl4 = "Net.WebClient" nocase ascii wide
        $dl5 = "Start-BitsTransfer" nocase ascii wide
        $iex1 = "Invoke-Expression" nocase ascii wide
        $iex2 = /\b(iex)\s*[(\s]/ nocase ascii wide
        $iex3 = /\|\s*iex\b/ nocase ascii wide

    condition:
        filesize < 5MB and any of ($dl*) and any of ($iex*)
}
