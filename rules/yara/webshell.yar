/*
    Small web shells: a server-side script that evaluates or executes what the HTTP request sends.
*/

rule Webshell_PHP_Request_Eval : webshell php
{
    meta:
        author = "socctl"
        description = "PHP script passing request input ($_GET/$_POST/$_REQUEST/$_COOKIE) to eval, assert or a shell function"
        severity = "critical"
        date = "2025-01-01"

    strings:
        $php = "<?php" nocase
        $short = "<?="
        $exec = /\b(eval|assert|system|passthru|shell_exec|exec|popen|proc_open|create_function)\s*\(\s*(@\s*)?((base64_decode|gzinflate|str_rot13|stripslashes)\s*\(\s*)*\$_(GET|POST|REQUEST|COOKIE|SERVER)\s*\[/ nocase
        $backtick = /`\s*\$_(GET|POST|REQUEST|COOKIE)\s*\[/

    condition:
        filesize < 1MB and ($php or $short) and ($exec or $backtick)
}

rule Webshell_ASPX_Request_Exec : webshell aspx
{
    meta:
        author = "socctl"
        description = "ASP.NET page that evaluates request input (China Chopper style) or starts a process from it"
        severity = "critical"
        date = "2025-01-01"

    strings:
        $page = /<%@\s*Page\s[^>]{0,200}Language\s*=\s*"?(C#|Jscript|VB)/ nocase
        $eval = /eval\s*\(\s*Request(\.Item|\.Form|\.QueryString)?\s*\[/ nocase
        $proc = "Process.Start" nocase
        $psi = "ProcessStartInfo" nocase
        $req = /Request(\.Form|\.QueryString|\.Item)?\s*\[/ nocase
        $cmd = "cmd.exe" nocase

    condition:
        filesize < 1MB and $page and ($eval or (($proc or $psi) and $req and $cmd))
}
