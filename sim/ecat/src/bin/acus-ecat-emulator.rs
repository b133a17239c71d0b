//! `acus-ecat-emulator --iface ecs0 --drives 6 [--params drives.yaml] [--drop-percent P]`:
//! emulated CiA 402 drives on a network interface. See [`acus_sim_ecat::cli`].

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "acus-ecat-emulator --iface IFACE [--drives N] [--params FILE.yaml] [--drop-percent P] \
             [--clock wall|lockstep] [--sm-watchdog-ms MS]\n\
             --params: YAML list of drive parameters, one per drive; `acus emulator-params` prints the positioner's."
        );
        return Ok(());
    }
    acus_sim_ecat::cli::run(&args)?;
    Ok(())
}
