BxJ`µ¯±Cu#ÄÃnþCDÌ­ºDbÄ=½D<¨DîSCDR:„CöœÃ©@¶DEõDQ4áDRc¤D²°²C2
—ÄBˆŽÀf$D‘¡ÄŸÅCîÖC¼.DÆ”Ä